//! The diverging palette every view of a map uses (the page's canvas, the
//! command line's PNG), so they look the same: white at zero, pure red at
//! +scale (evidence for the class), pure blue at -scale (against).

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
    let fade = (255.0 * (1.0 - t.abs())).round() as u8;
    if t >= 0.0 {
        [255, fade, fade, 255]
    } else {
        [fade, fade, 255, 255]
    }
}

/// The end of both sides of the scale: the largest finite |value|.
pub fn symmetric_scale(values: &[f32]) -> f32 {
    values
        .iter()
        .filter(|v| v.is_finite())
        .fold(0.0, |m, v| m.max(v.abs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn white_at_zero_red_for_blue_against() {
        assert_eq!(diverging(0.0, 2.0), [255, 255, 255, 255]);
        assert_eq!(diverging(2.0, 2.0), [255, 0, 0, 255]);
        assert_eq!(diverging(-2.0, 2.0), [0, 0, 255, 255]);
        assert_eq!(diverging(-1.0, 2.0), [128, 128, 255, 255]);
        assert_eq!(diverging(f32::NAN, 2.0)[3], 0);
        assert_eq!(symmetric_scale(&[1.0, -3.0, f32::NAN]), 3.0);
    }
}
