//! How to explain: the method (with what it is worth on this model), the
//! window, samples and stride; how long a run would take on this worker
//! (the worker's own estimate, from the speed it measured), and for a run
//! longer than a lesson allows, a question that offers a stride that fits.
//! The Explain and Compare buttons, and the presentation layout switch.

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::agreement;
use crate::api;
use crate::domain::Estimate;
use crate::method::Method;
use crate::run;
use crate::state::{use_page, Page};

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
pub fn summary(estimate: &Estimate) -> String {
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

/// Asks the worker for an estimate of the settings on screen, again when
/// they change and after each run (the worker's speed and queue change).
fn keep_estimate_current() {
    let page = use_page();
    let asked = StoredValue::new(0u64);
    Effect::new(move |_| {
        let settings = page.settings.get();
        page.shown.run.with(|r| r.phase);
        let this = asked.get_value() + 1;
        asked.set_value(this);
        spawn_local(async move {
            let answer = api::estimate(settings).await;
            if asked.get_value() == this {
                page.estimate.set(answer.ok());
            }
        });
    });
}

/// The shares of the windows a run may compute, as the page says them.
const BUDGETS: [(f64, &str); 5] = [
    (1.0, "every window"),
    (0.5, "half of them"),
    (0.25, "a quarter"),
    (0.125, "an eighth"),
    (0.0625, "a sixteenth"),
];

/// A share of the windows as the page says it ("a quarter").
fn budget_label(budget: f64) -> String {
    BUDGETS
        .iter()
        .find(|(share, _)| *share == budget)
        .map_or_else(
            || format!("{:.0}%", budget * 100.0),
            |(_, label)| label.trim_end_matches(" of them").to_string(),
        )
}

/// How many of the windows a run computes; the gradient methods compute
/// every pixel at once and have no such choice.
#[component]
fn BudgetField() -> impl IntoView {
    let settings = use_page().settings;
    let gradients = move || settings.method.get().needs_gradients();
    view! {
        <label class="field wide">
            <span>"Windows computed"</span>
            <select data-testid="budget" disabled=gradients
                on:change=move |ev| {
                    if let Ok(budget) = event_target_value(&ev).parse::<f64>() {
                        settings.budget.set(budget);
                    }
                }>
                {BUDGETS
                    .into_iter()
                    .map(|(budget, label)| view! {
                        <option value=budget.to_string()
                            prop:selected=move || settings.budget.get() == budget>{label}</option>
                    })
                    .collect_view()}
            </select>
        </label>
        <Show when=move || settings.budget.get() < 1.0 && !gradients()>
            <p class="hint" data-testid="budget-note">
                "The rest are estimated from their computed neighbours: first the windows \
                 that cover the image once, then those where the evidence has edges."
            </p>
        </Show>
    }
}

/// A number field bound to a setting.
#[component]
fn NumberField(
    label: &'static str,
    testid: &'static str,
    value: RwSignal<u32>,
    #[prop(default = "1")] min: &'static str,
    #[prop(optional)] max: Option<&'static str>,
    #[prop(into, optional)] disabled: Signal<bool>,
) -> impl IntoView {
    view! {
        <label class="field">
            <span>{label}</span>
            <input type="number" min=min max=max data-testid=testid
                disabled=move || disabled.get()
                prop:value=move || value.get().to_string()
                on:input=move |ev| value.set(event_target_value(&ev).parse().unwrap_or(0)) />
        </label>
    }
}

/// The window sizes a model's conditional sampler offers, for the methods
/// that use it, and whether the chosen one is among them.
fn window_sizes(page: Page) -> Option<impl IntoView> {
    let method = page.settings.method.get();
    let sampled = matches!(
        method,
        Method::Pda | Method::EfficientPda | Method::SampledMean
    );
    let sizes = page.model_choice()?.conditional_windows;
    if !sampled || sizes.is_empty() {
        return None;
    }
    let window = page.settings.window.get();
    let listed: Vec<String> = sizes.iter().map(|s| s.to_string()).collect();
    let fits = sizes.contains(&window);
    let text = if fits {
        format!(
            "Window sizes for this model's sampler: {}.",
            listed.join(", ")
        )
    } else {
        format!(
            "This model's sampler has statistics for windows {} only: pick one of them.",
            listed.join(", ")
        )
    };
    Some(view! {
        <p class="hint" class:error=!fits data-testid="window-sizes">{text}</p>
    })
}

/// Why the greyed-out methods are greyed out, on a model without gradients.
fn gradients_note(page: Page) -> Option<impl IntoView> {
    let model = page.model_choice()?;
    if model.gradients_unavailable.is_empty() {
        return None;
    }
    let chosen = page.settings.method.get();
    let text = match model.refusal(chosen) {
        Some(refusal) => {
            format!("{refusal} Pick PDA, efficient PDA, the sampled mean or occlusion.")
        }
        None => format!(
            "Gradient, saliency and Grad-CAM are greyed out: {}.",
            model.gradients_unavailable
        ),
    };
    let refused = model.refusal(chosen).is_some();
    Some(view! {
        <p class="hint" class:error=refused data-testid="gradients-unavailable">{text}</p>
    })
}

/// The model's defaults and why they are the defaults, with a way back to
/// them once the settings differ.
fn defaults_note(page: Page) -> Option<impl IntoView> {
    let model = page.model_choice()?;
    if model.defaults_basis.is_empty() {
        return None;
    }
    let samples = if model.default_method.uses_samples() {
        format!(" (S = {})", model.default_samples)
    } else {
        String::new()
    };
    let computed = if model.default_budget < 1.0 {
        format!(
            ", {} of the windows computed",
            budget_label(model.default_budget)
        )
    } else {
        String::new()
    };
    let text = format!(
        "Defaults: {}{samples}, window {}, stride {}{computed}, {}.",
        model.default_method.label(),
        model.default_window,
        model.default_stride,
        model.defaults_basis
    );
    let changed = !page.settings.are_defaults_of(&model);
    Some(view! {
        <p class="hint" data-testid="defaults">
            {text}
            {changed.then(|| view! {
                " "
                <button class="link-button" data-testid="use-defaults"
                    on:click=move |_| page.settings.take_defaults(&model)>"Use them"</button>
            })}
        </p>
    })
}

#[component]
pub fn SettingsPanel() -> impl IntoView {
    keep_estimate_current();
    let page = use_page();
    let settings = page.settings;
    let uses_samples = Signal::derive(move || settings.method.get().uses_samples());
    view! {
        <section class="panel settings" aria-labelledby="settings-title">
            <h2 id="settings-title">"How to explain"</h2>
            <label class="field wide">
                <span>"Method"</span>
                <select
                    data-testid="method"
                    on:change=move |ev| {
                        if let Some(m) = Method::from_value(&event_target_value(&ev)) {
                            settings.method.set(m);
                        }
                    }
                >
                    {Method::ALL
                        .into_iter()
                        .map(|m| {
                            let suffix = move || agreement::option_suffix(page.model_choice().as_ref(), m);
                            let refusal = move || page.model_choice().and_then(|model| model.refusal(m));
                            view! {
                                <option value=m.value() prop:selected=move || settings.method.get() == m
                                    disabled=move || refusal().is_some()
                                    title=move || refusal().unwrap_or_default()>
                                    {m.label()}{suffix}
                                </option>
                            }
                        })
                        .collect_view()}
                </select>
            </label>
            <p class="hint" data-testid="method-description">{move || settings.method.get().description()}</p>
            {move || gradients_note(page)}
            {move || {
                agreement::note(page.model_choice().as_ref(), settings.method.get(), settings.samples.get())
                    .map(|note| view! { <p class="hint agreement" data-testid="agreement">{note}</p> })
            }}
            <div class="numbers">
                <NumberField label="Window k" testid="window" value=settings.window max="28" />
                <NumberField label="Samples S" testid="samples" value=settings.samples max="1000"
                    disabled=Signal::derive(move || !uses_samples.get()) />
                <NumberField label="Stride" testid="stride" value=settings.stride />
            </div>
            <BudgetField />
            {move || window_sizes(page)}
            {move || defaults_note(page)}
            <div class="actions">
                <button class="primary explain" data-testid="explain" on:click=move |_| run::explain_or_ask(page)>
                    "Explain"
                </button>
                <button class="compare-button" data-testid="compare"
                    title="PDA, efficient PDA, gradient and occlusion on this image and class, side by side"
                    on:click=move |_| {
                        if let Some(request) = page.request() {
                            page.compare.set(Some(request));
                        }
                    }>"Compare methods"</button>
            </div>
            <p class="estimate" data-testid="estimate"
                data-seconds=move || page.estimate.with(|e| e.as_ref().map(|e| format!("{:.3}", e.seconds)).unwrap_or_default())>
                {move || page.estimate.with(|e| e.as_ref().map(summary).unwrap_or_default())}
            </p>
            <Show when=move || page.asking.get()>
                <ConfirmLongRun />
            </Show>
            <label class="toggle">
                <input type="checkbox" data-testid="presentation"
                    prop:checked=move || page.display.presentation.get()
                    on:change=move |ev| page.display.presentation.set(event_target_checked(&ev)) />
                " Presentation layout (large, for projectors)"
            </label>
        </section>
    }
}

/// The question before a long run: the suggested stride, as set, or not at all.
#[component]
fn ConfirmLongRun() -> impl IntoView {
    let page = use_page();
    let answer = move |stride: Option<u32>| {
        page.asking.set(false);
        if let Some(stride) = stride {
            page.settings.stride.set(stride);
        }
        run::explain(page);
    };
    move || {
        page.estimate.get().map(|estimate| {
            let suggested = estimate.suggested_stride;
            view! {
                <div class="confirm" role="dialog" aria-label="A long run" data-testid="confirm-long">
                    <p>
                        {format!(
                            "This explanation would take {} on this worker ({}): longer than a lesson can wait.",
                            duration(estimate.seconds),
                            estimate.device
                        )}
                    </p>
                    {(suggested > 0).then(|| view! {
                        <button class="primary" data-testid="use-suggested" on:click=move |_| answer(Some(suggested))>
                            {format!("Use stride {suggested} ({})", duration(estimate.suggested_seconds))}
                        </button>
                    })}
                    <button data-testid="run-anyway" on:click=move |_| answer(None)>"Run it anyway"</button>
                    <button data-testid="dismiss" on:click=move |_| page.asking.set(false)>"Not now"</button>
                </div>
            }
        })
    }
}
