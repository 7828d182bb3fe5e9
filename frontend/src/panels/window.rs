//! Look inside a window: clicking (or tapping) a finished map opens what
//! the method fed the network in the window nearest that pixel: the image
//! with each replacement drawn in, P(class) with each, their average, and
//! the window's evidence with the formula filled in. The worker recomputes
//! the window from the run's own draws, so every number is the map's; a
//! window a budgeted run estimated is computed now, and the panel says so.

use lens_proto::windows::{nearest, positions};
use leptos::html::Canvas;
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api;
use crate::domain::WindowLook;
use crate::events::Picture;
use crate::heatmap::paint;
use crate::method::Method;
use crate::run_view::Phase;
use crate::state::{use_page, Page};

/// Most replacements drawn (PDA may have hundreds of samples).
const MOST_SHOWN: usize = 12;

/// Opens the window nearest pixel (`x`, `y`) of the finished map.
pub fn open_window(page: Page, x: u32, y: u32) {
    let Some(id) = page.shown.share_id.get_untracked() else {
        return;
    };
    let (geometry, done, size) = page.shown.run.with_untracked(|r| {
        (
            r.geometry,
            r.phase == Phase::Done,
            page.shown.map.with_untracked(|m| (m.width, m.height)),
        )
    });
    if !done || !geometry.method.is_some_and(Method::replaces_windows) {
        return;
    }
    let (k, stride) = (geometry.window, geometry.stride);
    let xs = positions(size.0 as usize, k, stride);
    let ys = positions(size.1 as usize, k, stride);
    let (Some(col), Some(row)) = (nearest(&xs, k, x as usize), nearest(&ys, k, y as usize)) else {
        return;
    };
    spawn_local(async move {
        match api::inspect_window(id, xs[col] as u32, ys[row] as u32).await {
            Ok(look) => page.shown.window.set(Some(look)),
            Err(message) => page.notice.set(Some(message)),
        }
    });
}

/// Whether the run left the window `look` shows to be estimated (a budget
/// below 1) instead of computing it.
fn was_estimated(
    look: &WindowLook,
    run: &crate::run_view::RunView,
    width: u32,
    height: u32,
) -> bool {
    let (k, stride) = (run.geometry.window, run.geometry.stride);
    if run.estimated_windows.is_empty() || k == 0 || stride == 0 {
        return false;
    }
    let xs = positions(width as usize, k, stride);
    let ys = positions(height as usize, k, stride);
    let (Ok(col), Ok(row)) = (
        xs.binary_search(&(look.x as usize)),
        ys.binary_search(&(look.y as usize)),
    ) else {
        return false;
    };
    let cell = (row * xs.len() + col) as u32;
    run.estimated_windows.binary_search(&cell).is_ok()
}

/// The input with sample `sample`'s replacement drawn into the window.
fn replaced(input: &Picture, look: &WindowLook, sample: usize) -> Vec<u8> {
    let mut rgba = input.rgba.clone();
    let (k, channels) = (look.size as usize, look.channels as usize);
    let patch = &look.replacements[sample * channels * k * k..(sample + 1) * channels * k * k];
    let level = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
    for row in 0..k {
        for col in 0..k {
            let (x, y) = (look.x as usize + col, look.y as usize + row);
            let at = 4 * (y * input.width as usize + x);
            for c in 0..3 {
                let from = if channels >= 3 { c } else { 0 };
                rgba[at + c] = level(patch[from * k * k + row * k + col]);
            }
        }
    }
    rgba
}

/// Where the window sits, as CSS percentages of the picture (left, top,
/// width, height).
type Outline = [f64; 4];

/// One picture with its caption and the window outlined.
#[component]
fn Fed(rgba: Vec<u8>, width: u32, height: u32, caption: String, outline: Outline) -> impl IntoView {
    let canvas = NodeRef::<Canvas>::new();
    Effect::new(move |_| {
        if let Some(c) = canvas.get() {
            paint(&c, width, height, &rgba);
        }
    });
    view! {
        <figure class="fed">
            <div class="fed-picture">
                <canvas node_ref=canvas class="pixels" width=width height=height></canvas>
                <div class="fed-window" aria-hidden="true"
                    style:left=format!("{:.3}%", outline[0]) style:top=format!("{:.3}%", outline[1])
                    style:width=format!("{:.3}%", outline[2]) style:height=format!("{:.3}%", outline[3])></div>
            </div>
            <figcaption>{caption}</figcaption>
        </figure>
    }
}

/// The worked formula, with the window's numbers.
fn formula(look: &WindowLook, class: &str) -> Vec<String> {
    let (with, without) = (look.p_with, look.p_without);
    if look.method == Method::Occlusion {
        return vec![format!(
            "Drop in P({class}) = P with the image − P with the grey square = {with:.4} − {without:.4} = {:.4}",
            look.evidence
        )];
    }
    let (n, k) = (look.training_images, look.classes);
    vec![
        format!("Each P is first corrected to q = (P·N + 1) / (N + K), with N = {n} training images and K = {k} classes, so that 0 and 1 keep finite odds."),
        format!(
            "Weight of evidence = log₂ odds(q with) − log₂ odds(q without) = log₂({:.4} / {:.4}) − log₂({:.4} / {:.4}) = {:.3} − {:.3} = {:.3} bits",
            look.corrected(with),
            1.0 - look.corrected(with),
            look.corrected(without),
            1.0 - look.corrected(without),
            look.log2_odds(with),
            look.log2_odds(without),
            look.evidence
        ),
    ]
}

#[component]
pub fn WindowPanel() -> impl IntoView {
    let page = use_page();
    let shown = page.shown;
    move || {
        let (Some(look), Some(input)) = (shown.window.get(), shown.input.get()) else {
            return None;
        };
        let class = shown.run.with(|r| r.class_name(look.explained));
        let (width, height) = (input.width, input.height);
        let samples = look.p_samples.len();
        let percent = |part: u32, whole: u32| 100.0 * part as f64 / whole.max(1) as f64;
        let outline = [
            percent(look.x, width),
            percent(look.y, height),
            percent(look.size, width),
            percent(look.size, height),
        ];
        let pictures = std::iter::once(Fed(FedProps {
            rgba: input.rgba.clone(),
            width,
            height,
            caption: format!("The image: P({class}) = {:.4}", look.p_with),
            outline,
        }))
        .chain((0..samples.min(MOST_SHOWN)).map(|s| {
            Fed(FedProps {
                rgba: replaced(&input, &look, s),
                width,
                height,
                caption: format!("Replaced: P = {:.4}", look.p_samples[s]),
                outline,
            })
        }))
        .collect_view();
        let more = (samples > MOST_SHOWN).then(|| {
            format!(
                "…and {} more samples, all in the average.",
                samples - MOST_SHOWN
            )
        });
        let average = if samples > 1 {
            format!(
                "Average over the {samples} samples: P({class}) without the window = {:.4}",
                look.p_without
            )
        } else {
            format!(
                "P({class}) with the window replaced = {:.4}",
                look.p_without
            )
        };
        let lines = formula(&look, &class);
        let estimated = shown.run.with(|r| was_estimated(&look, r, width, height));
        Some(view! {
            <section class="panel window-look" data-testid="window-panel" aria-label="Inside the window">
                <div class="window-head">
                    <h2>{format!("Inside the {0} × {0} window at ({1}, {2})", look.size, look.x, look.y)}</h2>
                    <button data-testid="window-close" on:click=move |_| shown.window.set(None)>"Close"</button>
                </div>
                <p class="hint">{format!("What {} put there: {}.", look.method.label(), look.method.replacement())}</p>
                {estimated.then(|| view! {
                    <p class="hint" data-testid="window-estimated">
                        "The map did not compute this window: its value there was estimated from \
                         the computed windows around it. It is computed here, now."
                    </p>
                })}
                <div class="fed-row" data-testid="window-pictures">{pictures}</div>
                {more.map(|m| view! { <p class="hint">{m}</p> })}
                <p data-testid="window-average">{average}</p>
                {lines.into_iter().map(|l| view! { <p class="formula">{l}</p> }).collect_view()}
                <p class="window-evidence" data-testid="window-evidence" data-value=(look.evidence as f32).to_string()>
                    {format!("The map's value for this window: {:+.3}", look.evidence)}
                </p>
            </section>
        })
    }
}
