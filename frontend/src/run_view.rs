//! The current run as the page shows it: its phase, progress and outcome
//! (`RunView`), and the parts of the page that only read it: the status
//! line, the progress bar and errors, the class probabilities.

use lens_proto::v1::Method;
use leptos::prelude::*;

use crate::readout;

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
        }
    }
}

/// The status line (its data attributes are what the browser tests read).
#[component]
pub fn StatusLine(run: RwSignal<RunView>) -> impl IntoView {
    view! {
                <p
                    class="status"
                    data-testid="status"
                    data-state=move || run.with(|r| r.phase.as_str())
                    data-tiles=move || run.with(|r| r.tiles.to_string())
                    data-windows-done=move || run.with(|r| r.windows_done.to_string())
                    data-total-windows=move || run.with(|r| r.total_windows.to_string())
                    data-first-tile-ms=move || run.with(|r| r.first_tile_ms.map(|t| format!("{t:.1}")).unwrap_or_default())
                    data-coarse-ms=move || run.with(|r| r.coarse_ms.map(|t| format!("{t:.1}")).unwrap_or_default())
                    data-elapsed-ms=move || run.with(|r| format!("{:.1}", r.elapsed_ms))
                    data-replayed=move || run.with(|r| r.replayed.to_string())
                >
                    {move || run.with(|r| match r.phase {
                        Phase::Idle => "Pick an image to start.".to_string(),
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
                            if r.coarse_ms.is_some() { " (coarse map shown, refining)" } else { "" }
                        ),
                        Phase::Done if r.replayed => format!(
                            "Stored explanation: {} windows, computed in {:.2} s, opened in {:.2} s",
                            r.total_windows, r.wall_seconds, r.elapsed_ms / 1000.0
                        ),
                        Phase::Done => format!(
                            "Done: {} windows in {:.2} s ({:.0} windows per second)",
                            r.total_windows, r.elapsed_ms / 1000.0, r.windows_per_second
                        ),
                        Phase::Failed => "Something went wrong.".to_string(),
                    })}
                </p>
    }
}

/// The progress bar and the error, if any.
#[component]
pub fn Progress(run: RwSignal<RunView>) -> impl IntoView {
    view! {
                <progress
                    max=move || run.with(|r| r.total_windows.max(1).to_string())
                    value=move || run.with(|r| r.windows_done.to_string())
                ></progress>
                <Show when=move || run.with(|r| r.error.is_some())>
                    <p class="error" role="alert" data-testid="error">
                        {move || run.with(|r| r.error.clone().unwrap_or_default())}
                    </p>
                </Show>
    }
}

/// P(class | image): every class for a few (digits), else the top five;
/// clicking one explains it (`pick`).
#[component]
pub fn Probabilities(
    run: RwSignal<RunView>,
    pick: impl Fn(u32) + Copy + Send + Sync + 'static,
) -> impl IntoView {
    view! {
                <ol class="probabilities" data-testid="probabilities">
                    {move || run.with(|r| {
                        // All classes when there are few (digits), else the top 5.
                        let mut shown: Vec<usize> = (0..r.probabilities.len()).collect();
                        if shown.len() > 10 {
                            shown.sort_by(|&a, &b| r.probabilities[b].total_cmp(&r.probabilities[a]));
                            shown.truncate(5);
                        }
                        shown
                            .into_iter()
                            .map(|class| {
                                let p = r.probabilities[class];
                                let name = r.class_names.get(class).cloned().unwrap_or_else(|| class.to_string());
                                let predicted = class as u32 == r.predicted;
                                view! {
                                    <li
                                        class:predicted=predicted
                                        data-testid=format!("probability-{class}")
                                        title="Explain this class"
                                        on:click=move |_| pick(class as u32)
                                    >
                                        <span class="name" title=name.clone()>{name.clone()}</span>
                                        <span class="bar" style:width=format!("{:.1}%", p * 100.0)></span>
                                        <span class="value">{format!("{:.3}", p)}</span>
                                    </li>
                                }
                            })
                            .collect_view()
                    })}
                </ol>
    }
}
