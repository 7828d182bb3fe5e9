//! A canvas as an image file: the drawing pad's strokes and the camera's
//! frame go to the worker as PNG or JPEG bytes, exactly as an upload does,
//! so the worker converts them the same way.

use web_sys::HtmlCanvasElement;

use crate::domain::Image;

/// The canvas encoded as `mime` ("image/png" or "image/jpeg"), as an image
/// named `name` whose data URL also shows it.
pub fn canvas_image(canvas: &HtmlCanvasElement, mime: &str, name: &str) -> Option<Image> {
    let url = canvas.to_data_url_with_type(mime).ok()?;
    let bytes = data_url_bytes(&url)?;
    Some(Image {
        name: name.to_string(),
        bytes,
        url,
        credit: String::new(),
        label: 0,
    })
}

/// The bytes of a base64 data URL ("data:image/png;base64,...").
fn data_url_bytes(url: &str) -> Option<Vec<u8>> {
    let (_, encoded) = url.split_once(";base64,")?;
    // atob's answer holds one byte per character (Latin-1).
    let binary = web_sys::window()?.atob(encoded).ok()?;
    binary.chars().map(|c| u8::try_from(c).ok()).collect()
}
