//! Choosing the image the next run explains: a preset, a drawing, a
//! snapshot, or a file read from the person's device. Choosing one
//! explains it.

use js_sys::Uint8Array;
use leptos::prelude::*;
use leptos::task::spawn_local;
use wasm_bindgen_futures::JsFuture;
use web_sys::{HtmlInputElement, Url};

use crate::domain::Image;
use crate::run;
use crate::state::Page;

/// Explains `image` (a preset, an upload, a drawing, a snapshot).
pub fn choose_image(page: Page, image: Image) {
    page.image.set(Some(image));
    run::explain_or_ask(page);
}

/// Reads the chosen file and explains it.
pub fn upload(page: Page, input: &HtmlInputElement) {
    let Some(file) = input.files().and_then(|files| files.get(0)) else {
        return;
    };
    spawn_local(async move {
        match JsFuture::from(file.array_buffer()).await {
            Ok(buffer) => choose_image(
                page,
                Image {
                    name: file.name(),
                    bytes: Uint8Array::new(&buffer).to_vec(),
                    url: Url::create_object_url_with_blob(&file).unwrap_or_default(),
                    credit: String::new(),
                    label: 0,
                },
            ),
            Err(_) => page.fail(format!("Could not read the file {}.", file.name())),
        }
    });
}
