//! The camera: a person takes a picture and it is explained like an
//! upload. The live camera (getUserMedia) needs a secure context (HTTPS or
//! localhost); where the page has none, or the browser lacks the API, the
//! panel says why and offers the device's own camera through a file input.

use js_sys::{Array, Object, Reflect};
use leptos::html::Video;
use leptos::prelude::*;
use leptos::task::spawn_local;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    CanvasRenderingContext2d, HtmlCanvasElement, HtmlInputElement, HtmlVideoElement, MediaStream,
    MediaStreamConstraints, MediaStreamTrack,
};

use crate::choose::{choose_image, upload};
use crate::snapshot::canvas_image;
use crate::state::{use_page, Page};

/// Which way the camera looks (phones have one on each side).
#[derive(Clone, Copy, PartialEq)]
enum Facing {
    Back,
    Front,
}

impl Facing {
    fn constraint(self) -> &'static str {
        match self {
            Facing::Back => "environment",
            Facing::Front => "user",
        }
    }
}

/// Why the live camera cannot be used here, if it cannot.
fn camera_unavailable() -> Option<String> {
    let window = web_sys::window()?;
    if !window.is_secure_context() {
        let host = window.location().host().unwrap_or_default();
        return Some(format!(
            "The live camera works only on pages opened over HTTPS or on localhost, and this page came over plain HTTP from {host}. Use the button below to take a photo with your device instead, or ask the host for the HTTPS address."
        ));
    }
    let navigator = window.navigator();
    let has_api = Reflect::get(&navigator, &"mediaDevices".into()).is_ok_and(|d| !d.is_undefined());
    (!has_api).then(|| {
        "This browser has no live camera access; use the button below to take a photo instead."
            .to_string()
    })
}

/// A camera's refusal in words a person can act on.
fn refusal(error: JsValue) -> String {
    let name = Reflect::get(&error, &"name".into())
        .ok()
        .and_then(|n| n.as_string())
        .unwrap_or_default();
    match name.as_str() {
        "NotAllowedError" => "The browser was not allowed to use the camera: allow it in the site settings (next to the address) and try again.".into(),
        "NotFoundError" | "OverconstrainedError" => "No camera was found on this device.".into(),
        "NotReadableError" => "The camera is in use by another program.".into(),
        _ => format!("The camera could not be started ({name})."),
    }
}

async fn start_camera(facing: Facing) -> Result<MediaStream, String> {
    let devices = web_sys::window()
        .ok_or("no window")?
        .navigator()
        .media_devices()
        .map_err(refusal)?;
    let video = Object::new();
    let _ = Reflect::set(&video, &"facingMode".into(), &facing.constraint().into());
    let constraints = MediaStreamConstraints::new();
    constraints.set_video(&video);
    let asked = devices
        .get_user_media_with_constraints(&constraints)
        .map_err(refusal)?;
    let stream = JsFuture::from(asked).await.map_err(refusal)?;
    stream
        .dyn_into()
        .map_err(|_| "The camera sent no stream.".into())
}

/// How many cameras the device has (known once one was allowed).
async fn count_cameras() -> usize {
    let Some(Ok(devices)) = web_sys::window().map(|w| w.navigator().media_devices()) else {
        return 0;
    };
    let Ok(listed) = devices.enumerate_devices() else {
        return 0;
    };
    let Ok(list) = JsFuture::from(listed).await else {
        return 0;
    };
    Array::from(&list)
        .iter()
        .filter(|d| {
            Reflect::get(d, &"kind".into())
                .ok()
                .and_then(|k| k.as_string())
                .as_deref()
                == Some("videoinput")
        })
        .count()
}

fn stop(stream: &MediaStream) {
    for track in stream.get_tracks().iter() {
        if let Ok(track) = track.dyn_into::<MediaStreamTrack>() {
            track.stop();
        }
    }
}

/// The video's current frame, explained.
fn snap(page: Page, video: &HtmlVideoElement) {
    let (width, height) = (video.video_width(), video.video_height());
    let canvas = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.create_element("canvas").ok())
        .and_then(|c| c.dyn_into::<HtmlCanvasElement>().ok());
    let (Some(canvas), true) = (canvas, width > 0 && height > 0) else {
        page.fail("The camera has not sent a picture yet; try again in a moment.".into());
        return;
    };
    canvas.set_width(width);
    canvas.set_height(height);
    let drawn = canvas
        .get_context("2d")
        .ok()
        .flatten()
        .and_then(|c| c.dyn_into::<CanvasRenderingContext2d>().ok())
        .map(|ctx| ctx.draw_image_with_html_video_element(video, 0.0, 0.0));
    match (
        drawn,
        canvas_image(&canvas, "image/jpeg", "camera snapshot"),
    ) {
        (Some(Ok(())), Some(image)) => choose_image(page, image),
        _ => page.fail("Could not take the picture.".into()),
    }
}

#[component]
pub fn CameraPanel() -> impl IntoView {
    let page = use_page();
    let video = NodeRef::<Video>::new();
    let stream = StoredValue::new_local(None::<MediaStream>);
    let live = RwSignal::new(false);
    let facing = RwSignal::new(Facing::Back);
    let cameras = RwSignal::new(0usize);
    let problem = RwSignal::new(camera_unavailable());
    let unavailable = problem.get_untracked().is_some();

    let close = move || {
        if let Some(s) = stream.try_update_value(Option::take).flatten() {
            stop(&s);
        }
        if let Some(v) = video.get_untracked() {
            v.set_src_object(None);
        }
        live.set(false);
    };
    let open = move |toward: Facing| {
        close();
        facing.set(toward);
        spawn_local(async move {
            match start_camera(toward).await {
                Ok(s) => {
                    if let Some(v) = video.get_untracked() {
                        v.set_src_object(Some(&s));
                    }
                    stream.set_value(Some(s));
                    live.set(true);
                    problem.set(None);
                    cameras.set(count_cameras().await);
                }
                Err(message) => problem.set(Some(message)),
            }
        });
    };
    on_cleanup(close);
    let switch = move |_| {
        open(match facing.get_untracked() {
            Facing::Back => Facing::Front,
            Facing::Front => Facing::Back,
        })
    };

    view! {
        <div class="camera" data-testid="camera">
            <div class="camera-buttons">
                <Show when=move || !unavailable && !live.get()>
                    <button data-testid="camera-open" on:click=move |_| open(facing.get_untracked())>
                        "Take a picture"
                    </button>
                </Show>
                <Show when=move || live.get()>
                    <button class="primary" data-testid="camera-snap"
                        on:click=move |_| if let Some(v) = video.get_untracked() { snap(page, &v) }>
                        "Snap and explain"
                    </button>
                    <Show when=move || { cameras.get() > 1 }>
                        <button data-testid="camera-switch" on:click=switch>"Switch camera"</button>
                    </Show>
                    <button data-testid="camera-close" on:click=move |_| close()>"Close camera"</button>
                </Show>
            </div>
            <video node_ref=video class="camera-view" data-testid="camera-view"
                autoplay=true playsinline=true muted=true
                class:front=move || facing.get() == Facing::Front
                hidden=move || !live.get()></video>
            <Show when=move || problem.with(Option::is_some)>
                <p class="notice" data-testid="camera-problem">{move || problem.get().unwrap_or_default()}</p>
            </Show>
            <Show when=move || unavailable>
                <label class="upload">
                    <span>"Take a photo with this device's camera"</span>
                    <input type="file" accept="image/*" capture="environment" data-testid="camera-file"
                        on:change=move |ev| upload(page, &event_target::<HtmlInputElement>(&ev)) />
                </label>
            </Show>
        </div>
    }
}
