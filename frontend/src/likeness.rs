//! Which preset a watched run explains. A shared run or a teacher's view
//! carries the model's input, not the image's name, so the page compares
//! that input with each preset, both shrunk to a small thumbnail; a preset
//! is taken only when it is clearly the closest.

use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement, HtmlImageElement};

use crate::domain::Image;
use crate::events::Picture;
use crate::heatmap::paint;

/// Side of the thumbnails compared.
const SIDE: u32 = 16;
/// The crop the worker takes of a photo: the centre 224/256 of its short side.
const CROP: f64 = 224.0 / 256.0;
/// Mean difference per channel (0..255) under which a preset may match.
const CLOSE: f64 = 24.0;

fn canvas(side: u32) -> Option<(HtmlCanvasElement, CanvasRenderingContext2d)> {
    let document = web_sys::window()?.document()?;
    let canvas: HtmlCanvasElement = document.create_element("canvas").ok()?.dyn_into().ok()?;
    canvas.set_width(side);
    canvas.set_height(side);
    let context = canvas.get_context("2d").ok()??.dyn_into().ok()?;
    Some((canvas, context))
}

fn pixels(context: &CanvasRenderingContext2d) -> Option<Vec<u8>> {
    let data = context
        .get_image_data(0.0, 0.0, SIDE as f64, SIDE as f64)
        .ok()?;
    Some(data.data().0)
}

/// The model's input as a thumbnail.
fn thumbnail_of_input(input: &Picture) -> Option<Vec<u8>> {
    let (full, _) = canvas(input.width.max(input.height))?;
    paint(&full, input.width, input.height, &input.rgba);
    let (_, small) = canvas(SIDE)?;
    small
        .draw_image_with_html_canvas_element_and_dw_and_dh(
            &full,
            0.0,
            0.0,
            SIDE as f64,
            SIDE as f64,
        )
        .ok()?;
    pixels(&small)
}

/// A preset as the worker would crop it, as a thumbnail.
async fn thumbnail_of_preset(image: &Image) -> Option<Vec<u8>> {
    let element = HtmlImageElement::new().ok()?;
    element.set_src(&image.url);
    JsFuture::from(element.decode()).await.ok()?;
    let (w, h) = (
        element.natural_width() as f64,
        element.natural_height() as f64,
    );
    // Square images (the digits) are taken whole.
    let side = if w == h { w } else { w.min(h) * CROP };
    let (_, small) = canvas(SIDE)?;
    small
        .draw_image_with_html_image_element_and_sw_and_sh_and_dx_and_dy_and_dw_and_dh(
            &element,
            (w - side) / 2.0,
            (h - side) / 2.0,
            side,
            side,
            0.0,
            0.0,
            SIDE as f64,
            SIDE as f64,
        )
        .ok()?;
    pixels(&small)
}

fn difference(a: &[u8], b: &[u8]) -> f64 {
    let total: f64 = a
        .chunks(4)
        .zip(b.chunks(4))
        .map(|(p, q)| {
            (0..3)
                .map(|c| (p[c] as f64 - q[c] as f64).abs())
                .sum::<f64>()
        })
        .sum();
    total / (a.len() / 4 * 3).max(1) as f64
}

/// The preset `input` was made from, if one clearly is.
pub async fn preset_shown(input: &Picture, presets: &[Image]) -> Option<Image> {
    let target = thumbnail_of_input(input)?;
    let mut scored = Vec::new();
    for preset in presets {
        if let Some(thumbnail) = thumbnail_of_preset(preset).await {
            scored.push((difference(&target, &thumbnail), preset));
        }
    }
    scored.sort_by(|a, b| a.0.total_cmp(&b.0));
    match scored.as_slice() {
        [(best, preset)] if *best < CLOSE => Some((*preset).clone()),
        [(best, preset), (second, _), ..] if *best < CLOSE && *best < 0.5 * second => {
            Some((*preset).clone())
        }
        _ => None,
    }
}
