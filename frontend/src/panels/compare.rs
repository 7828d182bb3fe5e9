//! Side by side: several methods on the same image and class, each map with
//! the worker's wall time and its speed-up against PDA, so the paper's claim
//! shows live. The methods run one after another (the worker runs one job
//! at a time anyway), quickest first.

use std::ops::ControlFlow;

use leptos::html::Canvas;
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api::{self, each_event};
use crate::domain::{RunRequest, RunSettings};
use crate::events::{End, Picture, RunEvent};
use crate::heatmap::{paint, Heatmap};
use crate::method::Method;
use crate::state::use_page;

/// The compared methods: value for test hooks, label for people.
pub const COMPARED: [(Method, &str, &str); 4] = [
    (Method::EfficientPda, "efficient", "Efficient PDA"),
    (Method::Gradient, "gradient", "Gradient"),
    (Method::Occlusion, "occlusion", "Occlusion"),
    (Method::Pda, "pda", "PDA"),
];

#[derive(Clone, Debug, Default, PartialEq)]
struct Panel {
    map: Heatmap,
    input: Option<Picture>,
    wall_seconds: Option<f64>,
    error: Option<String>,
}

/// Runs the comparison whenever the page asks for one (its method is
/// replaced by each compared one).
#[component]
pub fn ComparePanel() -> impl IntoView {
    let request = use_page().compare;
    let panels = RwSignal::new(vec![Panel::default(); COMPARED.len()]);
    // Bumped by every comparison; an older one stops when it sees a newer.
    let generation = RwSignal::new(0u64);
    Effect::new(move |_| {
        let Some(base) = request.get() else {
            return;
        };
        let this_run = generation.get_untracked() + 1;
        generation.set(this_run);
        panels.set(vec![Panel::default(); COMPARED.len()]);
        let model = use_page().model_choice_untracked();
        spawn_local(async move {
            for (index, (method, _, _)) in COMPARED.iter().enumerate() {
                // A method the model cannot run says why and is passed over.
                if let Some(refusal) = model.as_ref().and_then(|m| m.refusal(*method)) {
                    panels.update(|p| p[index].error = Some(refusal));
                    continue;
                }
                let asked = RunRequest {
                    settings: RunSettings {
                        method: *method,
                        ..base.settings.clone()
                    },
                    ..base.clone()
                };
                if !run_one(asked, index, panels, generation, this_run).await {
                    return;
                }
            }
        });
    });
    let pda_seconds = move || panels.with(|p| p[COMPARED.len() - 1].wall_seconds);
    view! {
        <Show when=move || request.with(Option::is_some)>
            <section class="panel compare" data-testid="compare-view" aria-labelledby="compare-title">
                <h2 id="compare-title">"Side by side"</h2>
                <div class="compare-grid">
                    {COMPARED
                        .iter()
                        .enumerate()
                        .map(|(index, (_, value, label))| {
                            let panel = move || panels.with(|p| p[index].clone());
                            let state = move || {
                                let p = panel();
                                if p.error.is_some() {
                                    "error"
                                } else if p.wall_seconds.is_some() {
                                    "done"
                                } else {
                                    "running"
                                }
                            };
                            let timing = move || {
                                let p = panel();
                                match (p.wall_seconds, pda_seconds(), &p.error) {
                                    (_, _, Some(error)) => error.clone(),
                                    (None, _, _) => "computing…".to_string(),
                                    (Some(s), Some(pda), _) => {
                                        format!("{s:.2} s, {:.1}× faster than PDA", pda / s.max(1e-9))
                                    }
                                    (Some(s), None, _) => format!("{s:.2} s"),
                                }
                            };
                            view! {
                                <figure
                                    data-testid=format!("compare-{value}")
                                    data-state=state
                                    data-seconds=move || panel().wall_seconds.map(|s| format!("{s:.4}")).unwrap_or_default()
                                >
                                    <PanelCanvas panel=Signal::derive(panel) value=value />
                                    <figcaption>
                                        <strong>{*label}</strong>
                                        <span class="timing">{timing}</span>
                                    </figcaption>
                                </figure>
                            }
                        })
                        .collect_view()}
                </div>
            </section>
        </Show>
    }
}

/// One panel's input with its map over it, repainted as tiles arrive.
#[component]
fn PanelCanvas(panel: Signal<Panel>, value: &'static str) -> impl IntoView {
    let under = NodeRef::<Canvas>::new();
    let heat = NodeRef::<Canvas>::new();
    Effect::new(move |_| {
        let p = panel.get();
        if let (Some(input), Some(canvas)) = (&p.input, under.get()) {
            paint(&canvas, input.width, input.height, &input.rgba);
        }
        if let Some(canvas) = heat.get() {
            if p.map.width > 0 {
                paint(&canvas, p.map.width, p.map.height, &p.map.rgba());
            }
        }
    });
    view! {
        <div class="stack">
            <canvas node_ref=under class="pixels" width="28" height="28"></canvas>
            <canvas node_ref=heat class="pixels heat" data-testid=format!("compare-canvas-{value}")
                width="28" height="28" style:opacity="0.8"></canvas>
        </div>
    }
}

/// Streams one method into its panel; false when a newer comparison took
/// over or the run failed (the rest are then not started).
async fn run_one(
    request: RunRequest,
    index: usize,
    panels: RwSignal<Vec<Panel>>,
    generation: RwSignal<u64>,
    this_run: u64,
) -> bool {
    let set = move |change: &dyn Fn(&mut Panel)| panels.update(|p| change(&mut p[index]));
    let feed = match api::explain(request).await {
        Ok(feed) => feed,
        Err(message) => {
            set(&|p| p.error = Some(message.clone()));
            return false;
        }
    };
    let ended = each_event(feed, |event| {
        if generation.get_untracked() != this_run {
            return ControlFlow::Break(());
        }
        match event {
            RunEvent::Started(started) => {
                let input = started.input;
                set(&|p| {
                    if let Some(input) = &input {
                        p.map = Heatmap::new(input.width, input.height);
                    }
                    p.input = input.clone();
                });
            }
            RunEvent::Tile(tile) => set(&|p| p.map.apply(&tile)),
            RunEvent::Finished(finished) => set(&|p| p.wall_seconds = Some(finished.wall_seconds)),
            // The panel simply stays empty while the run waits.
            RunEvent::Queued { .. } | RunEvent::ClassMap { .. } | RunEvent::Moved => {}
        }
        ControlFlow::Continue(())
    })
    .await;
    match ended {
        Ok(end) => end == End::Finished,
        Err(broken) => {
            set(&|p| p.error = Some(broken.message.clone()));
            false
        }
    }
}
