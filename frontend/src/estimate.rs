//! Before a run: how long it would take on this worker (the worker's own
//! estimate, from the speed it measured), and for a run longer than a
//! lesson allows, a question that offers a stride that fits.

use lens_proto::v1::EstimateResponse;
use leptos::prelude::*;

/// Runs estimated longer than this are confirmed first (the worker
/// suggests strides against the same minute).
pub const LESSON_SECONDS: f64 = 60.0;

/// "under a second", "about 12 s", "about 3 min", "about 1.5 h".
pub fn duration(seconds: f64) -> String {
    match seconds {
        s if s < 1.0 => "under a second".into(),
        s if s < 90.0 => format!("about {s:.0} s"),
        s if s < 90.0 * 60.0 => format!("about {:.0} min", s / 60.0),
        s => format!("about {:.1} h", s / 3600.0),
    }
}

/// One line: the run's size and time on this worker.
pub fn summary(estimate: &EstimateResponse) -> String {
    let waiting = match estimate.jobs_ahead {
        0 => String::new(),
        1 => ", after 1 explanation already queued".into(),
        n => format!(", after {n} explanations already queued"),
    };
    format!(
        "{} windows, {} passes: {} on this worker ({}){waiting}",
        estimate.windows,
        estimate.forward_passes,
        duration(estimate.seconds),
        estimate.device
    )
}

/// The question before a long run. `use_stride` runs with the suggested
/// stride, `run_anyway` as set, `dismiss` not at all.
#[component]
pub fn ConfirmLongRun(
    estimate: EstimateResponse,
    use_stride: impl Fn(u32) + Copy + Send + Sync + 'static,
    run_anyway: impl Fn() + Copy + Send + Sync + 'static,
    dismiss: impl Fn() + Copy + Send + Sync + 'static,
) -> impl IntoView {
    let suggested = estimate.suggested_stride;
    view! {
        <div class="confirm" role="dialog" data-testid="confirm-long">
            <p>
                {format!(
                    "This explanation would take {} on this worker ({}): longer than a lesson can wait.",
                    duration(estimate.seconds),
                    estimate.device
                )}
            </p>
            {(suggested > 0).then(|| view! {
                <button class="primary" data-testid="use-suggested" on:click=move |_| use_stride(suggested)>
                    {format!("Use stride {suggested} ({})", duration(estimate.suggested_seconds))}
                </button>
            })}
            <button data-testid="run-anyway" on:click=move |_| run_anyway()>"Run it anyway"</button>
            <button data-testid="dismiss" on:click=move |_| dismiss()>"Not now"</button>
        </div>
    }
}
