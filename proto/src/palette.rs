//! The diverging palette every view of a map uses (the page's canvas, the
//! command line's PNG), so they look the same: Moreland's "cool to warm"
//! map (K. Moreland, *Diverging Color Maps for Scientific Visualization*,
//! 2009), neutral light grey at zero, red at +scale (evidence for the
//! class), blue at -scale (against). It is interpolated in Moreland's Msh
//! space (polar CIELAB), so equal steps of value look like equal steps of
//! colour, lightness falls evenly towards both ends, and the two sides stay
//! apart for readers with red-green colour blindness (they differ in
//! blue-yellow as well).

use std::sync::OnceLock;

/// The ends of the map, in sRGB (Moreland's published endpoints).
const AGAINST: [f64; 3] = [59.0, 76.0, 192.0];
const FOR: [f64; 3] = [180.0, 4.0, 38.0];
/// Colours in the lookup table, from -scale to +scale; the middle one is 0.
const STEPS: usize = 257;

/// RGBA of `value` on a scale symmetric around zero; transparent for NaN
/// (not computed yet).
pub fn diverging(value: f32, scale: f32) -> [u8; 4] {
    if !value.is_finite() {
        return [0, 0, 0, 0];
    }
    let t = if scale > 0.0 {
        (value / scale).clamp(-1.0, 1.0)
    } else {
        0.0
    };
    let index = ((t + 1.0) / 2.0 * (STEPS - 1) as f32).round() as usize;
    let [r, g, b] = table()[index];
    [r, g, b, 255]
}

/// The end of both sides of the scale: the largest finite |value|.
pub fn symmetric_scale(values: &[f32]) -> f32 {
    values
        .iter()
        .filter(|v| v.is_finite())
        .fold(0.0, |m, v| m.max(v.abs()))
}

/// The palette's colours from -scale to +scale (for legends).
pub fn table() -> &'static [[u8; 3]; STEPS] {
    static TABLE: OnceLock<[[u8; 3]; STEPS]> = OnceLock::new();
    TABLE.get_or_init(|| {
        let (against, warm) = (msh(lab(AGAINST)), msh(lab(FOR)));
        std::array::from_fn(|i| {
            let t = i as f64 / (STEPS - 1) as f64;
            srgb(lab_of_msh(interpolate(against, warm, t)))
        })
    })
}

/// Moreland's interpolation: through an unsaturated middle (at least as
/// bright as the ends) when the ends differ in hue, each half at a constant
/// hue, adjusted where it meets the grey.
fn interpolate(mut a: [f64; 3], mut b: [f64; 3], mut t: f64) -> [f64; 3] {
    use std::f64::consts::PI;
    let saturated = |c: [f64; 3]| c[1] > 0.05;
    if saturated(a) && saturated(b) && angle_between(a[2], b[2]) > PI / 3.0 {
        let middle = [a[0].max(b[0]).max(88.0), 0.0, 0.0];
        if t < 0.5 {
            b = middle;
            t *= 2.0;
        } else {
            a = middle;
            t = 2.0 * t - 1.0;
        }
    }
    if !saturated(a) && saturated(b) {
        a[2] = adjusted_hue(b, a[0]);
    } else if !saturated(b) && saturated(a) {
        b[2] = adjusted_hue(a, b[0]);
    }
    std::array::from_fn(|i| (1.0 - t) * a[i] + t * b[i])
}

fn angle_between(h1: f64, h2: f64) -> f64 {
    let d = (h1 - h2).abs() % (2.0 * std::f64::consts::PI);
    d.min(2.0 * std::f64::consts::PI - d)
}

/// The hue an unsaturated colour of magnitude `m` takes next to the
/// saturated `c`, so the hue does not jump where the saturation reaches 0.
fn adjusted_hue(c: [f64; 3], m: f64) -> f64 {
    let [mc, s, h] = c;
    if mc >= m {
        return h;
    }
    let spin = s * (m * m - mc * mc).sqrt() / (mc * s.sin());
    if h > -std::f64::consts::PI / 3.0 {
        h + spin
    } else {
        h - spin
    }
}

/// D65 white in XYZ.
const WHITE: [f64; 3] = [0.95047, 1.0, 1.08883];

/// CIELAB of an sRGB colour (0-255 per channel).
fn lab(rgb: [f64; 3]) -> [f64; 3] {
    let linear = rgb.map(|c| {
        let c = c / 255.0;
        if c <= 0.04045 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    });
    let [r, g, b] = linear;
    let xyz = [
        0.4124 * r + 0.3576 * g + 0.1805 * b,
        0.2126 * r + 0.7152 * g + 0.0722 * b,
        0.0193 * r + 0.1192 * g + 0.9505 * b,
    ];
    let f = |t: f64| {
        if t > 0.008856 {
            t.cbrt()
        } else {
            7.787 * t + 16.0 / 116.0
        }
    };
    let [fx, fy, fz] = [0, 1, 2].map(|i| f(xyz[i] / WHITE[i]));
    [116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)]
}

/// An sRGB colour (rounded, clipped to 0-255) from CIELAB.
fn srgb(lab: [f64; 3]) -> [u8; 3] {
    let [l, a, b] = lab;
    let fy = (l + 16.0) / 116.0;
    let f_inverse = |f: f64| {
        if f.powi(3) > 0.008856 {
            f.powi(3)
        } else {
            (f - 16.0 / 116.0) / 7.787
        }
    };
    let [x, y, z] = [fy + a / 500.0, fy, fy - b / 200.0]
        .map(f_inverse)
        .iter()
        .zip(WHITE)
        .map(|(f, w)| f * w)
        .collect::<Vec<_>>()
        .try_into()
        .expect("three components");
    let linear = [
        3.2406 * x - 1.5372 * y - 0.4986 * z,
        -0.9689 * x + 1.8758 * y + 0.0415 * z,
        0.0557 * x - 0.2040 * y + 1.0570 * z,
    ];
    linear.map(|c| {
        let c = if c <= 0.0031308 {
            12.92 * c
        } else {
            1.055 * c.powf(1.0 / 2.4) - 0.055
        };
        (c * 255.0).round().clamp(0.0, 255.0) as u8
    })
}

/// Moreland's Msh: magnitude, saturation (angle from the grey axis), hue.
fn msh(lab: [f64; 3]) -> [f64; 3] {
    let [l, a, b] = lab;
    let m = (l * l + a * a + b * b).sqrt();
    [m, (l / m).acos(), b.atan2(a)]
}

fn lab_of_msh(msh: [f64; 3]) -> [f64; 3] {
    let [m, s, h] = msh;
    [m * s.cos(), m * s.sin() * h.cos(), m * s.sin() * h.sin()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn distance(a: [u8; 3], b: [u8; 3]) -> f64 {
        let (a, b) = (lab(a.map(f64::from)), lab(b.map(f64::from)));
        (0..3).map(|i| (a[i] - b[i]).powi(2)).sum::<f64>().sqrt()
    }

    #[test]
    fn ends_are_the_published_colours_and_zero_is_grey() {
        assert_eq!(diverging(2.0, 2.0), [180, 4, 38, 255]);
        assert_eq!(diverging(-2.0, 2.0), [59, 76, 192, 255]);
        assert_eq!(diverging(5.0, 2.0), diverging(2.0, 2.0));
        let [r, g, b, _] = diverging(0.0, 2.0);
        let middle = lab([r, g, b].map(f64::from));
        assert!(middle[1].abs() < 1.5 && middle[2].abs() < 1.5, "{middle:?}");
        assert!(middle[0] > 85.0, "{middle:?}");
        assert_eq!(diverging(f32::NAN, 2.0)[3], 0);
        assert_eq!(symmetric_scale(&[1.0, -3.0, f32::NAN]), 3.0);
    }

    #[test]
    fn lightness_falls_evenly_from_the_middle_to_both_ends() {
        let lightness: Vec<f64> = table().iter().map(|c| lab(c.map(f64::from))[0]).collect();
        let middle = STEPS / 2;
        for i in 1..=middle {
            assert!(lightness[middle - i] < lightness[middle - i + 1] + 0.5);
            assert!(lightness[middle + i] < lightness[middle + i - 1] + 0.5);
        }
        // Equal steps of value are steps of similar size in colour (CIELAB
        // distance over 16 table entries, well above rounding).
        let steps: Vec<f64> = (0..STEPS - 16)
            .step_by(16)
            .map(|i| distance(table()[i], table()[i + 16]))
            .collect();
        let (small, large) = steps
            .iter()
            .fold((f64::MAX, 0.0f64), |(s, l), &d| (s.min(d), l.max(d)));
        assert!(large / small < 1.6, "{steps:?}");
    }

    #[test]
    fn the_two_sides_differ_for_red_green_colour_blind_readers() {
        // Blue-yellow (CIELAB b) separates the sides, not only red-green (a).
        let for_side = lab(table()[STEPS - 40].map(f64::from));
        let against_side = lab(table()[39].map(f64::from));
        assert!(
            for_side[2] - against_side[2] > 20.0,
            "{for_side:?} {against_side:?}"
        );
    }
}
