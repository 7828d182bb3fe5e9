//! Files made in the page: the finished map's raw values as a float32
//! `.npy` (H x W, loadable with numpy; encoded by `lens_proto::npy`), the
//! colour map as PNG, the map overlaid on the input as PNG, all drawn from
//! the run's data rather than read back from the canvases on screen. Also
//! blob URLs for image bytes.

use js_sys::{Array, Uint8Array};
use wasm_bindgen::JsCast;
use web_sys::{
    Blob, BlobPropertyBag, CanvasRenderingContext2d, HtmlAnchorElement, HtmlCanvasElement, Url,
};

use crate::events::Picture;
use crate::heatmap::{paint, Heatmap};

fn blob(bytes: &[u8], mime: &str) -> Option<Blob> {
    let parts = Array::of1(&Uint8Array::from(bytes));
    let options = BlobPropertyBag::new();
    options.set_type(mime);
    Blob::new_with_u8_array_sequence_and_options(&parts, &options).ok()
}

/// A URL the page can show `bytes` from (an `<img>`'s `src`).
pub fn object_url(bytes: &[u8], mime: &str) -> String {
    blob(bytes, mime)
        .and_then(|b| Url::create_object_url_with_blob(&b).ok())
        .unwrap_or_default()
}

/// Offers the map's values as `NAME.npy`.
pub fn download_npy(map: &Heatmap, stem: &str) {
    if map.values.is_empty() {
        return;
    }
    let bytes = lens_proto::npy::f32_matrix(&map.values, map.height as usize, map.width as usize);
    let Some(blob) = blob(&bytes, "application/octet-stream") else {
        return;
    };
    if let Ok(url) = Url::create_object_url_with_blob(&blob) {
        click_link(&url, &format!("{stem}.npy"));
        let _ = Url::revoke_object_url(&url);
    }
}

/// Offers the colour map as `NAME-map.png`.
pub fn download_map(map: &Heatmap, stem: &str) {
    if let Some(canvas) = canvas_of(map.width, map.height, &map.rgba()) {
        download_canvas(&canvas, &format!("{stem}-map.png"));
    }
}

/// Offers the map drawn over the input at `opacity` as `NAME-overlay.png`.
pub fn download_overlay(input: &Picture, map: &Heatmap, opacity: f64, stem: &str) {
    let overlay = (|| {
        let under = canvas_of(input.width, input.height, &input.rgba)?;
        let heat = canvas_of(map.width, map.height, &map.rgba())?;
        let canvas = canvas_of(map.width, map.height, &[])?;
        let context: CanvasRenderingContext2d = canvas.get_context("2d").ok()??.dyn_into().ok()?;
        context
            .draw_image_with_html_canvas_element(&under, 0.0, 0.0)
            .ok()?;
        context.set_global_alpha(opacity);
        context
            .draw_image_with_html_canvas_element(&heat, 0.0, 0.0)
            .ok()?;
        Some(canvas)
    })();
    if let Some(canvas) = overlay {
        download_canvas(&canvas, &format!("{stem}-overlay.png"));
    }
}

/// A canvas of this size off screen, painted with `rgba` unless it is empty.
fn canvas_of(width: u32, height: u32, rgba: &[u8]) -> Option<HtmlCanvasElement> {
    let document = web_sys::window()?.document()?;
    let canvas: HtmlCanvasElement = document.create_element("canvas").ok()?.dyn_into().ok()?;
    canvas.set_width(width);
    canvas.set_height(height);
    if !rgba.is_empty() {
        paint(&canvas, width, height, rgba);
    }
    Some(canvas)
}

fn download_canvas(canvas: &HtmlCanvasElement, name: &str) {
    if let Ok(url) = canvas.to_data_url_with_type("image/png") {
        click_link(&url, name);
    }
}

fn click_link(url: &str, name: &str) {
    let Some(document) = web_sys::window().and_then(|w| w.document()) else {
        return;
    };
    let Some(link) = document
        .create_element("a")
        .ok()
        .and_then(|e| e.dyn_into::<HtmlAnchorElement>().ok())
    else {
        return;
    };
    link.set_href(url);
    link.set_download(name);
    link.click();
}
