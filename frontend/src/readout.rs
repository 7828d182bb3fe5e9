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
    let windows = if geometry.has_windows() {
        covering(&xs, k, px).len() * covering(&ys, k, py).len()
    } else {
        0
    };
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
    }
    if let Some((wx, wy, p)) = r.without {
        let k = geometry.window;
        line += &format!(
            " · P({class}) = {p_with:.3} with the whole image, {p:.3} with the {k} × {k} window at ({wx}, {wy}) replaced"
        );
    }
    line
}
