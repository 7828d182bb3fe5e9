//! Every way a run starts: a new one from the controls (asking first when
//! it would be long), or a shared one watched by its id. Both read the
//! run's events into the store as they come.

use std::ops::ControlFlow;

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api::{self, each_event, RunFeed};
use crate::events::RunEvent;
use crate::heatmap::Heatmap;
use crate::readout;
use crate::run_view::Phase;
use crate::state::Page;
use lens_proto::LESSON_SECONDS;

/// Milliseconds since the page loaded (wasm32 has no `std::time`).
fn now_ms() -> f64 {
    web_sys::window()
        .and_then(|w| w.performance())
        .map_or(0.0, |p| p.now())
}

/// Every way of starting a run goes through here: a run longer than a
/// lesson allows asks first.
pub fn explain_or_ask(page: Page) {
    // A student who starts a run explores on their own from then on.
    if page.class.is_student() {
        page.class.following.set(false);
    }
    let long = page
        .estimate
        .with_untracked(|e| e.as_ref().is_some_and(|e| e.seconds > LESSON_SECONDS));
    if long {
        page.asking.set(true);
    } else {
        explain(page);
    }
}

/// Starts a run with the controls' settings.
pub fn explain(page: Page) {
    let Some(request) = page.request() else {
        return;
    };
    let this_run = page.begin();
    page.shown.share_id.set(None);
    // A new run shows its explained class first.
    page.display
        .map_view
        .set(crate::class_maps::MapView::Explained);
    spawn_local(async move {
        match api::explain(request).await {
            Ok(feed) => follow(page, feed, this_run).await,
            Err(message) => page.fail_run(this_run, message),
        }
    });
}

/// Opens a shared run: live if it is still going, else the stored
/// result at once.
pub fn watch(page: Page, id: String) {
    let this_run = page.begin();
    page.shown.run.update(|r| r.watched = true);
    spawn_local(async move {
        match api::watch(id).await {
            Ok(feed) => follow(page, feed, this_run).await,
            Err(message) => page.fail_run(this_run, message),
        }
    });
}

/// Reads one run's events into the store until it ends or a newer run
/// takes the page.
async fn follow(page: Page, feed: RunFeed, this_run: u64) {
    let started = now_ms();
    let ended = each_event(feed, |event| {
        if !page.is_current(this_run) {
            // Dropping the stream ends this viewer.
            return ControlFlow::Break(());
        }
        apply(page, event, now_ms() - started);
        ControlFlow::Continue(())
    })
    .await;
    if let Err(broken) = ended {
        if broken.cancelled {
            if page.is_current(this_run) {
                page.shown.run.update(|r| r.phase = Phase::Cancelled);
            }
        } else {
            page.fail_run(this_run, broken.message);
        }
    }
}

fn apply(page: Page, event: RunEvent, elapsed_ms: f64) {
    let shown = page.shown;
    match event {
        RunEvent::Queued {
            ahead,
            id,
            owner_secret,
        } => {
            if !owner_secret.is_empty() {
                crate::link::EXPLANATIONS.remember(&id, &owner_secret);
            }
            shown.share_id.set(Some(id).filter(|id| !id.is_empty()));
            shown.run.update(|r| {
                r.queued_ahead = Some(ahead);
                r.elapsed_ms = elapsed_ms;
            });
        }
        RunEvent::Started(s) => {
            if let Some(input) = &s.input {
                shown.map.set(Heatmap::new(input.width, input.height));
            }
            shown.input.set(s.input.clone());
            if !s.owner_secret.is_empty() {
                crate::link::EXPLANATIONS.remember(&s.id, &s.owner_secret);
            }
            // A watched explanation brings its own settings.
            if let Some(asked) = &s.settings {
                page.settings.set(asked);
            }
            shown
                .share_id
                .set(Some(s.id.clone()).filter(|id| !id.is_empty()));
            let method = s.settings.as_ref().map(|asked| asked.method);
            let geometry = s.settings.as_ref().map(|asked| readout::Geometry {
                window: asked.window as usize,
                stride: asked.stride as usize,
                method,
            });
            shown.run.update(|r| {
                r.queued_ahead = None;
                r.method = method;
                r.geometry = geometry.unwrap_or_default();
                r.probabilities = s.probabilities;
                r.class_names = s.class_names;
                r.predicted = s.predicted;
                r.explained = s.explained;
                r.total_windows = s.total_windows;
                r.elapsed_ms = elapsed_ms;
            });
        }
        RunEvent::Tile(tile) => {
            shown.map.update(|map| map.apply(&tile));
            let scale = shown.map.with_untracked(Heatmap::scale);
            shown.run.update(|r| {
                // The coarse map is a preview (sharpened by each level of a
                // budgeted run) that final tiles replace.
                if tile.coarse {
                    r.coarse_ms.get_or_insert(elapsed_ms);
                } else {
                    r.tiles += 1;
                    r.first_tile_ms.get_or_insert(elapsed_ms);
                }
                r.windows_done = tile.windows_done;
                r.total_windows = tile.total_windows;
                r.scale = scale;
                r.elapsed_ms = elapsed_ms;
            });
        }
        RunEvent::ClassMap { class, values } => {
            shown.run.update(|r| r.class_maps.push((class, values)));
        }
        RunEvent::Finished(f) => shown.run.update(|r| {
            r.spread = f.spread;
            r.window_probabilities = f.window_probabilities;
            r.estimated_windows = f.estimated_windows;
            r.phase = Phase::Done;
            r.replayed = f.replayed;
            r.wall_seconds = f.wall_seconds;
            r.elapsed_ms = elapsed_ms;
            r.windows_per_second = f.windows_per_second;
        }),
        // A status, not an error: the map goes on where it was.
        RunEvent::Moved => page.notice.set(Some(
            "The worker running this explanation stopped; another one took over.".into(),
        )),
    }
}
