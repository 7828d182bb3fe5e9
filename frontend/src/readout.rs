//! Reading the map under the pointer (or a finger): the value of the pixel,
//! how many windows covered it, and for window methods the class
//! probability with the whole image and with the window nearest the pixel
//! replaced, which is what the evidence there is made of.

use lens_proto::windows::{covering, nearest, positions};

use crate::heatmap::Heatmap;
use crate::method::Method;

/// What one pixel of a finished map says.
#[derive(Clone, Debug, PartialEq)]
pub struct Reading {
    pub x: u32,
    pub y: u32,
    pub value: f32,
    /// Windows that contained the pixel (0 for per-pixel methods).
    pub windows: usize,
    /// How many of them were estimated from their neighbours, not computed.
    pub estimated: usize,
    /// The window nearest the pixel and P(class) with it replaced.
    pub without: Option<(usize, usize, f32)>,
}

/// The run's geometry: what the map was computed with.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Geometry {
    pub window: usize,
    pub stride: usize,
    pub method: Option<Method>,
}

impl Geometry {
    fn has_windows(&self) -> bool {
        self.method.is_none_or(Method::has_windows)
    }
}

pub fn read(
    map: &Heatmap,
    geometry: Geometry,
    window_probabilities: &[f32],
    estimated_windows: &[u32],
    x: u32,
    y: u32,
) -> Option<Reading> {
    if x >= map.width || y >= map.height {
        return None;
    }
    let value = map.values[(y * map.width + x) as usize];
    if !value.is_finite() {
        return None;
    }
    let k = geometry.window;
    let xs = positions(map.width as usize, k, geometry.stride);
    let ys = positions(map.height as usize, k, geometry.stride);
    let (px, py) = (x as usize, y as usize);
    let (columns, rows) = (covering(&xs, k, px), covering(&ys, k, py));
    let windows = if geometry.has_windows() {
        columns.len() * rows.len()
    } else {
        0
    };
    // Estimated windows are listed by position (row-major), increasing.
    let across = xs.len();
    let estimated = rows
        .clone()
        .flat_map(|row| columns.clone().map(move |col| (row * across + col) as u32))
        .filter(|cell| estimated_windows.binary_search(cell).is_ok())
        .count();
    let without = match (nearest(&xs, k, px), nearest(&ys, k, py)) {
        (Some(col), Some(row)) if window_probabilities.len() == xs.len() * ys.len() => {
            Some((xs[col], ys[row], window_probabilities[row * xs.len() + col]))
        }
        _ => None,
    };
    Some(Reading {
        x,
        y,
        value,
        windows,
        estimated,
        without,
    })
}

/// The unit of a method's values, short.
pub fn unit(method: Option<Method>) -> &'static str {
    match method {
        Some(Method::Occlusion) => "drop in P",
        Some(Method::Saliency) => "|∂P/∂pixel|",
        Some(Method::GradCam) => "Grad-CAM",
        _ => "bits",
    }
}

/// One line for the page.
pub fn describe(r: &Reading, geometry: Geometry, class: &str, p_with: f32) -> String {
    let mut line = format!(
        "Pixel ({}, {}): {:+.3} {}",
        r.x,
        r.y,
        r.value,
        unit(geometry.method)
    );
    if r.windows > 0 {
        line += &format!(
            " · covered by {} window{}",
            r.windows,
            if r.windows == 1 { "" } else { "s" }
        );
        match r.estimated {
            0 => {}
            n if n == r.windows => line += " (all estimated from their neighbours)",
            n => line += &format!(" ({} computed, {n} estimated)", r.windows - n),
        }
    }
    if let Some((wx, wy, p)) = r.without {
        let k = geometry.window;
        line += &format!(
            " · P({class}) = {p_with:.3} with the whole image, {p:.3} with the {k} × {k} window at ({wx}, {wy}) replaced"
        );
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 6 x 6 map of windows k = 3 at stride 1: a 4 x 4 grid of positions.
    fn reading_at(x: u32, y: u32, estimated: &[u32]) -> Reading {
        let map = Heatmap {
            width: 6,
            height: 6,
            values: vec![0.5; 36],
        };
        let geometry = Geometry {
            window: 3,
            stride: 1,
            method: Some(Method::Occlusion),
        };
        read(&map, geometry, &[0.9; 16], estimated, x, y).unwrap()
    }

    #[test]
    fn a_reading_counts_the_estimated_windows_over_the_pixel() {
        // Pixel (0, 0) lies in window position 0 only.
        assert_eq!(reading_at(0, 0, &[]).estimated, 0);
        assert_eq!(reading_at(0, 0, &[0]).estimated, 1);
        // Pixel (2, 2) lies in the windows at rows and columns 0-2: nine,
        // of which positions 5 (row 1, column 1) and 10 (row 2, column 2).
        let centre = reading_at(2, 2, &[5, 10, 15]);
        assert_eq!((centre.windows, centre.estimated), (9, 2));
        let line = describe(&centre, Geometry::default(), "cat", 0.9);
        assert!(
            line.contains("covered by 9 windows (7 computed, 2 estimated)"),
            "{line}"
        );
        let all = reading_at(0, 0, &[0]);
        let line = describe(&all, Geometry::default(), "cat", 0.9);
        assert!(
            line.contains("(all estimated from their neighbours)"),
            "{line}"
        );
    }
}
