//! The drawing pad, offered with a handwriting model: a person draws a
//! digit with the mouse, a pen or a finger, and the map follows the pen: a
//! moment after each stroke the drawing is explained exactly as an uploaded
//! digit would be. White ink on black, like the digits the network learnt.
//! Where the page stacks the map above the controls (phones, the
//! presentation layout), a copy of the map sits beside the pad, so a
//! person drawing sees it change.

use std::time::Duration;

use leptos::ev::PointerEvent;
use leptos::html::Canvas;
use leptos::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement};

use crate::choose::choose_image;
use crate::heatmap::paint;
use crate::panels::run::paint_input_into;
use crate::snapshot::canvas_image;
use crate::state::{use_page, Page};

/// The pad's side in canvas pixels: ten for each pixel of a 28 x 28 digit.
const SIDE: u32 = 280;
/// The pen: about two digit pixels wide, like MNIST's strokes.
const PEN: f64 = 22.0;
/// How long after a stroke the drawing is explained, unless another
/// stroke starts first (a digit of several strokes makes one run).
const SETTLE: Duration = Duration::from_millis(250);

fn context(canvas: &HtmlCanvasElement) -> Option<CanvasRenderingContext2d> {
    canvas.get_context("2d").ok()??.dyn_into().ok()
}

fn clear(canvas: &HtmlCanvasElement) {
    if let Some(ctx) = context(canvas) {
        ctx.set_fill_style_str("black");
        ctx.fill_rect(0.0, 0.0, SIDE as f64, SIDE as f64);
    }
}

/// A line of ink (a dot where `from` is `to`).
fn ink(canvas: &HtmlCanvasElement, from: (f64, f64), to: (f64, f64)) {
    let Some(ctx) = context(canvas) else {
        return;
    };
    ctx.set_stroke_style_str("white");
    ctx.set_line_width(PEN);
    ctx.set_line_cap("round");
    ctx.set_line_join("round");
    ctx.begin_path();
    ctx.move_to(from.0, from.1);
    ctx.line_to(to.0, to.1);
    ctx.stroke();
}

/// Where the pointer is, in canvas pixels (the pad is shown scaled).
fn point(canvas: &HtmlCanvasElement, ev: &PointerEvent) -> (f64, f64) {
    let scale = |shown: i32| SIDE as f64 / shown.max(1) as f64;
    (
        ev.offset_x() as f64 * scale(canvas.client_width()),
        ev.offset_y() as f64 * scale(canvas.client_height()),
    )
}

fn explain_drawing(page: Page, canvas: &HtmlCanvasElement) {
    match canvas_image(canvas, "image/png", "drawing") {
        Some(image) => choose_image(page, image),
        None => page.fail("Could not read the drawing pad.".into()),
    }
}

#[component]
pub fn DrawingPad() -> impl IntoView {
    let page = use_page();
    let canvas = NodeRef::<Canvas>::new();
    // Where the pen is while it touches the pad.
    let pen = StoredValue::new(None::<(f64, f64)>);
    // Counts strokes, so a stroke cancels the previous one's pending run.
    let strokes = StoredValue::new(0u64);
    Effect::new(move |_| {
        if let Some(c) = canvas.get() {
            clear(&c);
        }
    });
    let down = move |ev: PointerEvent| {
        let Some(c) = canvas.get_untracked() else {
            return;
        };
        ev.prevent_default();
        let _ = c.set_pointer_capture(ev.pointer_id());
        strokes.update_value(|n| *n += 1);
        let at = point(&c, &ev);
        ink(&c, at, at);
        pen.set_value(Some(at));
    };
    let moved = move |ev: PointerEvent| {
        let (Some(c), Some(from)) = (canvas.get_untracked(), pen.get_value()) else {
            return;
        };
        let to = point(&c, &ev);
        ink(&c, from, to);
        pen.set_value(Some(to));
    };
    let lifted = move |_: PointerEvent| {
        if pen.get_value().is_none() {
            return;
        }
        pen.set_value(None);
        let stroke = strokes.get_value();
        set_timeout(
            move || {
                if let (true, Some(c)) = (strokes.get_value() == stroke, canvas.get_untracked()) {
                    explain_drawing(page, &c);
                }
            },
            SETTLE,
        );
    };
    let wipe = move |_| {
        strokes.update_value(|n| *n += 1);
        if let Some(c) = canvas.get_untracked() {
            clear(&c);
        }
    };
    view! {
        <div class="drawing" data-testid="drawing">
            <span class="drawing-title">"…or draw a digit"</span>
            <canvas
                node_ref=canvas
                class="pad"
                width=SIDE
                height=SIDE
                data-testid="drawing-pad"
                role="img"
                aria-label="Drawing pad: draw a digit with the mouse, a pen or a finger"
                on:pointerdown=down
                on:pointermove=moved
                on:pointerup=lifted
                on:pointercancel=lifted
            ></canvas>
            <LiveMap />
            <button data-testid="drawing-clear" on:click=wipe>"Clear"</button>
        </div>
    }
}

/// The input and the map on screen, small, beside the pad (the style
/// sheet shows it only where the main map is out of view while drawing).
#[component]
fn LiveMap() -> impl IntoView {
    let page = use_page();
    let under = NodeRef::<Canvas>::new();
    let heat = NodeRef::<Canvas>::new();
    paint_input_into([under]);
    Effect::new(move |_| {
        let Some(canvas) = heat.get() else {
            return;
        };
        let (_, map) = page.displayed();
        if !map.values.is_empty() {
            paint(&canvas, map.width, map.height, &map.rgba());
        }
    });
    view! {
        <figure class="live-map" data-testid="live-map">
            <div class="stack">
                <canvas node_ref=under class="pixels" width="28" height="28"></canvas>
                <canvas node_ref=heat class="pixels heat" data-testid="live-map-canvas" width="28" height="28"
                    role="img" aria-label="The evidence map, beside the pad"
                    style:opacity=move || page.display.opacity.get().to_string()></canvas>
            </div>
            <figcaption>"The map, as you draw"</figcaption>
        </figure>
    }
}
