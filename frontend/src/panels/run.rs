//! The run: its status line (whose data attributes the browser tests read),
//! the progress bar and errors, the input and the map over it with the
//! legend, what the pixel under the pointer says, and how the map is shown
//! (evidence or PDA's spread, overlay opacity).

use leptos::html::Canvas;
use leptos::prelude::*;

use crate::class_maps::{self, MapView};
use crate::heatmap::{paint, sequential_rgba, Heatmap};
use crate::panels::legend::Legend;
use crate::panels::window::open_window;
use crate::readout;
use crate::run_view::{Phase, RunView};
use crate::state::use_page;

#[component]
pub fn RunPanel() -> impl IntoView {
    let page = use_page();
    let run = page.shown.run;
    view! {
        <section class="panel run" aria-label="The map">
            <StatusLine />
            <Show when=move || run.with(|r| r.phase == Phase::Running) && page.owns_shown()>
                <button class="cancel" data-testid="cancel" on:click=move |_| cancel()>"Cancel"</button>
            </Show>
            <progress aria-label="Windows computed"
                max=move || run.with(|r| r.total_windows.max(1).to_string())
                value=move || run.with(|r| r.windows_done.to_string())
            ></progress>
            <Show when=move || run.with(|r| r.error.is_some())>
                <p class="error" role="alert" data-testid="error">
                    {move || run.with(|r| r.error.clone().unwrap_or_default())}
                </p>
            </Show>
            <Show when=move || page.notice.with(Option::is_some)>
                <p class="notice" data-testid="notice">{move || page.notice.get().unwrap_or_default()}</p>
            </Show>
            <Canvases />
            <p class="readout" data-testid="readout">
                {move || page.shown.reading.get().unwrap_or_else(|| {
                    "Point at the map (or tap it) to read a pixel; click it to look inside the window there.".to_string()
                })}
            </p>
            <div class="view-options">
                <label class="toggle">
                    <input type="checkbox" data-testid="show-spread"
                        disabled=move || run.with(|r| r.spread.is_empty())
                        prop:checked=move || page.display.show_spread.get()
                        on:change=move |ev| page.display.show_spread.set(event_target_checked(&ev)) />
                    " Show where PDA is uncertain (spread of P(class) over the S samples)"
                </label>
                <label class="field">
                    <span>"Overlay opacity"</span>
                    <input type="range" min="0" max="1" step="0.05" data-testid="opacity"
                        prop:value=move || page.display.opacity.get().to_string()
                        on:input=move |ev| page.display.opacity.set(event_target_value(&ev).parse().unwrap_or(0.8)) />
                </label>
            </div>
        </section>
    }
}

/// Stops the run on screen (its creator only).
fn cancel() {
    let page = use_page();
    let Some((id, owner_secret)) = page.owned_share() else {
        return;
    };
    leptos::task::spawn_local(async move {
        if let Err(message) = crate::api::cancel(id, owner_secret).await {
            page.notice.set(Some(message));
        }
    });
}

/// Keeps `canvases` painted with the input on screen.
pub fn paint_input_into<const N: usize>(canvases: [NodeRef<Canvas>; N]) {
    let page = use_page();
    Effect::new(move |_| {
        page.shown.input.with(|input| {
            let Some(input) = input else {
                return;
            };
            for canvas in canvases {
                if let Some(c) = canvas.get() {
                    paint(&c, input.width, input.height, &input.rgba);
                }
            }
        })
    });
}

/// The input, the map over it, the legend; repainted from the store.
#[component]
fn Canvases() -> impl IntoView {
    let page = use_page();
    let run = page.shown.run;
    let input_canvas = NodeRef::<Canvas>::new();
    let under_canvas = NodeRef::<Canvas>::new();
    let heat_canvas = NodeRef::<Canvas>::new();
    paint_input_into([input_canvas, under_canvas]);
    // The evidence as tiles arrive; once finished, the uncertainty view
    // paints the sample spread (white to purple) instead.
    Effect::new(move |_| {
        let Some(canvas) = heat_canvas.get() else {
            return;
        };
        let spread_view = page.display.show_spread.get();
        let (view, map) = page.displayed();
        if map.values.is_empty() {
            return;
        }
        let spread = run.with(|r| {
            (spread_view && view == MapView::Explained && r.spread.len() == map.values.len())
                .then(|| sequential_rgba(&r.spread))
        });
        let rgba = spread.unwrap_or_else(|| map.rgba());
        paint(&canvas, map.width, map.height, &rgba);
    });
    // The finished map under the pointer (or a tap).
    let read_pixel = move |ev: leptos::ev::PointerEvent| {
        let Some(canvas) = heat_canvas.get_untracked() else {
            return;
        };
        let (shown_w, shown_h) = (canvas.client_width(), canvas.client_height());
        let (view, map) = untrack(|| page.displayed());
        let line = run.with_untracked(|r| {
            if r.phase != Phase::Done || map.values.is_empty() || shown_w <= 0 || shown_h <= 0 {
                return None;
            }
            let x = (ev.offset_x().max(0) as u32 * map.width) / shown_w as u32;
            let y = (ev.offset_y().max(0) as u32 * map.height) / shown_h as u32;
            reading(&map, view, r, x, y)
        });
        page.shown.reading.set(line);
    };
    // A click (or tap) on the finished map opens the window under it.
    let look_inside = move |ev: leptos::ev::MouseEvent| {
        let Some(canvas) = heat_canvas.get_untracked() else {
            return;
        };
        let (shown_w, shown_h) = (canvas.client_width(), canvas.client_height());
        let (width, height) = page.shown.map.with_untracked(|m| (m.width, m.height));
        if shown_w <= 0 || shown_h <= 0 || page.shown_view_untracked() != MapView::Explained {
            return;
        }
        let x = (ev.offset_x().max(0) as u32 * width) / shown_w as u32;
        let y = (ev.offset_y().max(0) as u32 * height) / shown_h as u32;
        open_window(
            page,
            x.min(width.saturating_sub(1)),
            y.min(height.saturating_sub(1)),
        );
    };
    view! {
        <div class="canvases">
            <figure class="input">
                <canvas node_ref=input_canvas class="pixels" data-testid="input-canvas" width="28" height="28"
                    role="img" aria-label="The input, as the network sees it"></canvas>
                <figcaption>"Input, as the network sees it"</figcaption>
            </figure>
            <figure class="map">
                <div class="stack">
                    <canvas node_ref=under_canvas class="pixels" width="28" height="28"></canvas>
                    <canvas node_ref=heat_canvas class="pixels heat" data-testid="heatmap-canvas" width="28" height="28"
                        role="img" aria-label="The evidence map over the input"
                        style:opacity=move || page.display.opacity.get().to_string()
                        on:pointermove=read_pixel on:pointerdown=read_pixel on:click=look_inside></canvas>
                </div>
                <figcaption data-testid="map-caption">
                    {move || {
                        let (view, _) = page.displayed();
                        run.with(|r| class_maps::caption(view, r))
                    }}
                </figcaption>
            </figure>
            <Legend />
        </div>
    }
}

/// What pixel (x, y) of the map on screen says, as one line. The
/// probabilities with each window replaced are the explained class's.
fn reading(map: &Heatmap, view: MapView, r: &RunView, x: u32, y: u32) -> Option<String> {
    let explained = view == MapView::Explained;
    let window_probabilities: &[f32] = if explained {
        &r.window_probabilities
    } else {
        &[]
    };
    let found = readout::read(
        map,
        r.geometry,
        window_probabilities,
        &r.estimated_windows,
        x,
        y,
    )?;
    let p_with = r
        .probabilities
        .get(r.explained as usize)
        .copied()
        .unwrap_or(0.0);
    Some(readout::describe(
        &found,
        r.geometry,
        &r.class_name(r.explained),
        p_with,
    ))
}

/// The status line.
#[component]
fn StatusLine() -> impl IntoView {
    let run = use_page().shown.run;
    let attribute = move |read: fn(&RunView) -> String| move || run.with(read);
    view! {
        <p
            class="status"
            data-testid="status"
            role="status"
            data-state=attribute(|r| r.phase.as_str().to_string())
            data-tiles=attribute(|r| r.tiles.to_string())
            data-windows-done=attribute(|r| r.windows_done.to_string())
            data-total-windows=attribute(|r| r.total_windows.to_string())
            data-first-tile-ms=attribute(|r| r.first_tile_ms.map(|t| format!("{t:.1}")).unwrap_or_default())
            data-coarse-ms=attribute(|r| r.coarse_ms.map(|t| format!("{t:.1}")).unwrap_or_default())
            data-elapsed-ms=attribute(|r| format!("{:.1}", r.elapsed_ms))
            data-replayed=attribute(|r| r.replayed.to_string())
        >
            {move || run.with(status_text)}
        </p>
    }
}

fn status_text(r: &RunView) -> String {
    match r.phase {
        Phase::Idle => "Pick an image to start.".to_string(),
        // Only other browsers' runs count: none ahead means this browser's
        // own run is on the worker.
        Phase::Running if r.queued_ahead == Some(0) => format!(
            "Waiting for this browser's previous explanation to finish, {:.1} s",
            r.elapsed_ms / 1000.0
        ),
        Phase::Running if r.queued_ahead.is_some() => format!(
            "Waiting for the worker: {} ahead of this one, {:.1} s",
            match r.queued_ahead.unwrap_or(0) {
                1 => "1 explanation".to_string(),
                n => format!("{n} explanations"),
            },
            r.elapsed_ms / 1000.0
        ),
        Phase::Cancelled => "Cancelled.".to_string(),
        Phase::Running => format!(
            "Computing… {} of {} windows, {:.1} s{}",
            r.windows_done,
            r.total_windows,
            r.elapsed_ms / 1000.0,
            if r.coarse_ms.is_some() {
                " (coarse map shown, refining)"
            } else {
                ""
            }
        ),
        Phase::Done if r.replayed => format!(
            "Stored explanation: {} windows, computed in {:.2} s, opened in {:.2} s",
            r.total_windows,
            r.wall_seconds,
            r.elapsed_ms / 1000.0
        ),
        Phase::Done => format!(
            "Done: {} windows in {:.2} s ({:.0} windows per second)",
            r.total_windows,
            r.elapsed_ms / 1000.0,
            r.windows_per_second
        ),
        Phase::Failed => "Something went wrong.".to_string(),
    }
}
