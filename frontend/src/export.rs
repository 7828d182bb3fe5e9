//! Downloads of the finished map: the raw values as a float32 `.npy`
//! (H x W, loadable with numpy; encoded by `lens_proto::npy`), the colour
//! map as PNG, and the map overlaid on the input as PNG.

use js_sys::{Array, Uint8Array};
use wasm_bindgen::JsCast;
use web_sys::{
    Blob, BlobPropertyBag, CanvasRenderingContext2d, HtmlAnchorElement, HtmlCanvasElement, Url,
};

/// Offers `bytes` to the user as a file called `name`.
pub fn download(bytes: &[u8], mime: &str, name: &str) {
    let parts = Array::of1(&Uint8Array::from(bytes));
    let options = BlobPropertyBag::new();
    options.set_type(mime);
    let Ok(blob) = Blob::new_with_u8_array_sequence_and_options(&parts, &options) else {
        return;
    };
    if let Ok(url) = Url::create_object_url_with_blob(&blob) {
        click_link(&url, name);
        let _ = Url::revoke_object_url(&url);
    }
}

/// Offers the canvas as a PNG file.
pub fn download_canvas(canvas: &HtmlCanvasElement, name: &str) {
    if let Ok(url) = canvas.to_data_url_with_type("image/png") {
        click_link(&url, name);
    }
}

/// The heat canvas drawn over the input canvas at `opacity`, on a new
/// canvas of the map's size.
pub fn overlay(
    under: &HtmlCanvasElement,
    heat: &HtmlCanvasElement,
    opacity: f64,
) -> Option<HtmlCanvasElement> {
    let document = web_sys::window()?.document()?;
    let canvas: HtmlCanvasElement = document.create_element("canvas").ok()?.dyn_into().ok()?;
    canvas.set_width(heat.width());
    canvas.set_height(heat.height());
    let context: CanvasRenderingContext2d = canvas.get_context("2d").ok()??.dyn_into().ok()?;
    context
        .draw_image_with_html_canvas_element(under, 0.0, 0.0)
        .ok()?;
    context.set_global_alpha(opacity);
    context
        .draw_image_with_html_canvas_element(heat, 0.0, 0.0)
        .ok()?;
    Some(canvas)
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
