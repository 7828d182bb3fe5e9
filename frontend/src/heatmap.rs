//! The evidence map as the page holds it while tiles arrive, and how it and
//! the input are painted: a diverging red-white-blue scale symmetric around
//! zero (red: evidence for the class, blue: against), scaled to the largest
//! magnitude received so far. Pixels not computed yet stay transparent.

use lens_proto::palette::{diverging, symmetric_scale};
use wasm_bindgen::{Clamped, JsCast};
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement, ImageData};

use crate::events::MapTile;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Heatmap {
    pub width: u32,
    pub height: u32,
    /// Row-major; NaN where no tile has arrived yet.
    pub values: Vec<f32>,
}

impl Heatmap {
    pub fn new(width: u32, height: u32) -> Self {
        Heatmap {
            width,
            height,
            values: vec![f32::NAN; (width * height) as usize],
        }
    }

    pub fn apply(&mut self, tile: &MapTile) {
        for row in 0..tile.height {
            for col in 0..tile.width {
                let (x, y) = (tile.x + col, tile.y + row);
                if x < self.width && y < self.height {
                    self.values[(y * self.width + x) as usize] =
                        tile.values[(row * tile.width + col) as usize];
                }
            }
        }
    }

    /// Largest |value| so far: the end of both sides of the scale.
    pub fn scale(&self) -> f32 {
        symmetric_scale(&self.values)
    }

    pub fn rgba(&self) -> Vec<u8> {
        let scale = self.scale();
        self.values
            .iter()
            .flat_map(|&v| diverging(v, scale))
            .collect()
    }
}

/// White (0) to purple (the largest value): for non-negative maps such as
/// the sample spread.
pub fn sequential_rgba(values: &[f32]) -> Vec<u8> {
    let top = symmetric_scale(values).max(f32::MIN_POSITIVE);
    values
        .iter()
        .flat_map(|v| {
            let t = (v / top).clamp(0.0, 1.0);
            let fade = |full: f32| (255.0 - t * (255.0 - full)).round() as u8;
            [fade(118.0), fade(42.0), fade(131.0), 255]
        })
        .collect()
}

/// Resizes the canvas to `width x height` and paints the RGBA pixels.
pub fn paint(canvas: &HtmlCanvasElement, width: u32, height: u32, rgba: &[u8]) {
    canvas.set_width(width);
    canvas.set_height(height);
    let Some(context) = canvas
        .get_context("2d")
        .ok()
        .flatten()
        .and_then(|c| c.dyn_into::<CanvasRenderingContext2d>().ok())
    else {
        return;
    };
    if let Ok(data) = ImageData::new_with_u8_clamped_array_and_sh(Clamped(rgba), width, height) {
        let _ = context.put_image_data(&data, 0.0, 0.0);
    }
}
