//! The current run as the page holds it (`RunView`: its phase, progress
//! and outcome), and every way a run starts: a new one from the controls
//! (asking first when it would be long), or a shared one watched by its id.
//! Both read the run's events into the store as they come.

use std::ops::ControlFlow;

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::client::{self, RunFeed};
use crate::domain::RunRequest;
use crate::heatmap::Heatmap;
use crate::method::Method;
use crate::readout;
use crate::state::Page;
use crate::stream::{each_event, RunEvent};
use lens_proto::LESSON_SECONDS;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Idle,
    Running,
    Done,
    Failed,
    Cancelled,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Idle => "idle",
            Phase::Running => "running",
            Phase::Done => "done",
            Phase::Failed => "error",
            Phase::Cancelled => "cancelled",
        }
    }
}

/// Everything the page shows about the current run.
#[derive(Clone, Debug, PartialEq)]
pub struct RunView {
    pub phase: Phase,
    pub error: Option<String>,
    pub probabilities: Vec<f32>,
    pub class_names: Vec<String>,
    /// PDA's per-pixel sample spread, once finished.
    pub spread: Vec<f32>,
    pub predicted: u32,
    pub explained: u32,
    pub windows_done: u64,
    pub total_windows: u64,
    pub tiles: u32,
    pub scale: f32,
    pub elapsed_ms: f64,
    pub windows_per_second: f64,
    pub first_tile_ms: Option<f64>,
    /// When the coarse map arrived (long runs send one before any tile).
    pub coarse_ms: Option<f64>,
    /// Shown from the store, not computed now.
    pub replayed: bool,
    /// The computation's own time (as stored).
    pub wall_seconds: f64,
    /// Explanations ahead of this one while it waits for the device.
    pub queued_ahead: Option<u32>,
    /// The method that made the map (from the run itself).
    pub method: Option<Method>,
    /// Window and stride of the run, for reading the map.
    pub geometry: readout::Geometry,
    /// Per window position, P(explained class) with the window replaced.
    pub window_probabilities: Vec<f32>,
    /// The other classes' maps from the same run, by class.
    pub class_maps: Vec<(u32, Vec<f32>)>,
    /// Opened by its id (a share link, a teacher's view), not started here.
    pub watched: bool,
}

impl RunView {
    pub fn class_name(&self, class: u32) -> String {
        self.class_names
            .get(class as usize)
            .cloned()
            .unwrap_or_else(|| class.to_string())
    }
}

impl Default for RunView {
    fn default() -> Self {
        RunView {
            phase: Phase::Idle,
            error: None,
            probabilities: Vec::new(),
            class_names: Vec::new(),
            spread: Vec::new(),
            predicted: 0,
            explained: 0,
            windows_done: 0,
            total_windows: 0,
            tiles: 0,
            scale: 0.0,
            elapsed_ms: 0.0,
            windows_per_second: 0.0,
            first_tile_ms: None,
            coarse_ms: None,
            replayed: false,
            wall_seconds: 0.0,
            queued_ahead: None,
            method: None,
            geometry: readout::Geometry::default(),
            window_probabilities: Vec::new(),
            class_maps: Vec::new(),
            watched: false,
        }
    }
}

impl Page {
    /// The request the controls describe, or None (and a message) without
    /// an image.
    pub fn request(&self) -> Option<RunRequest> {
        let Some(image) = self.image.get_untracked() else {
            self.fail("Pick a preset digit or upload an image first.".into());
            return None;
        };
        Some(RunRequest {
            image: image.bytes,
            settings: self.settings.get_untracked(),
        })
    }

    /// The page shows `message` as the run's failure.
    pub fn fail(&self, message: String) {
        self.shown.run.set(RunView {
            phase: Phase::Failed,
            error: Some(message),
            ..Default::default()
        });
    }

    /// Every way of starting a run goes through here: a run longer than a
    /// lesson allows asks first.
    pub fn explain_or_ask(&self) {
        // A student who starts a run explores on their own from then on.
        if self.class.is_student() {
            self.class.following.set(false);
        }
        let long = self
            .estimate
            .with_untracked(|e| e.as_ref().is_some_and(|e| e.seconds > LESSON_SECONDS));
        if long {
            self.asking.set(true);
        } else {
            self.explain();
        }
    }

    /// Starts a run with the controls' settings.
    pub fn explain(&self) {
        let Some(request) = self.request() else {
            return;
        };
        let page = *self;
        let this_run = self.begin();
        self.shown.share_id.set(None);
        // A new run shows its explained class first.
        self.display
            .map_view
            .set(crate::class_maps::MapView::Explained);
        spawn_local(async move {
            match client::explain(request).await {
                Ok(feed) => follow(page, feed, this_run).await,
                Err(message) => page.fail_run(this_run, message),
            }
        });
    }

    /// Opens a shared run: live if it is still going, else the stored
    /// result at once.
    pub fn watch(&self, id: String) {
        let page = *self;
        let this_run = self.begin();
        self.shown.run.update(|r| r.watched = true);
        spawn_local(async move {
            match client::watch(id).await {
                Ok(feed) => follow(page, feed, this_run).await,
                Err(message) => page.fail_run(this_run, message),
            }
        });
    }

    /// A fresh run on screen; its number, which a newer run outdates.
    fn begin(&self) -> u64 {
        let shown = self.shown;
        let this_run = shown.generation.get_untracked() + 1;
        shown.generation.set(this_run);
        shown.run.set(RunView {
            phase: Phase::Running,
            ..Default::default()
        });
        shown.reading.set(None);
        shown.window.set(None);
        shown.map.set(Heatmap::default());
        self.notice.set(None);
        this_run
    }

    fn is_current(&self, this_run: u64) -> bool {
        self.shown.generation.get_untracked() == this_run
    }

    fn fail_run(&self, this_run: u64, message: String) {
        if self.is_current(this_run) {
            self.shown.run.update(|r| {
                r.phase = Phase::Failed;
                r.error = Some(message);
            });
        }
    }
}

/// Reads one run's events into the store until it ends or a newer run
/// takes the page.
async fn follow(page: Page, feed: RunFeed, this_run: u64) {
    let started = crate::now_ms();
    let ended = each_event(feed, |event| {
        if !page.is_current(this_run) {
            // Dropping the stream ends this viewer.
            return ControlFlow::Break(());
        }
        apply(page, event, crate::now_ms() - started);
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
                // The coarse map is a preview that final tiles replace.
                if tile.coarse {
                    r.coarse_ms = Some(elapsed_ms);
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
