//! Classes: what the network predicted, P(class | image) for every class
//! when there are few (digits), else the top five, and which class's map is
//! shown. Clicking a class shows its map at once when the run made one
//! (every class of the digits, the top five of a photo), else explains it
//! in a new run; "why A rather than B?" shows the contrast of two maps.

use leptos::prelude::*;

use crate::class_maps::{has_map, MapView};
use crate::run;
use crate::run_view::{Phase, RunView};
use crate::state::{use_page, Page};

/// The classes listed: all of a small model, else the five most probable.
fn listed(r: &RunView) -> Vec<usize> {
    let mut shown: Vec<usize> = (0..r.probabilities.len()).collect();
    if shown.len() > 10 {
        shown.sort_by(|&a, &b| r.probabilities[b].total_cmp(&r.probabilities[a]));
        shown.truncate(5);
    }
    shown
}

/// Whether the finished run has a map of `class` to show at once.
fn instant(page: Page, class: u32) -> bool {
    page.shown.map.with_untracked(|map| {
        page.shown
            .run
            .with_untracked(|r| r.phase == Phase::Done && has_map(r, map, class))
    })
}

/// Shows `class`'s map: at once when the run has it, else in a new run.
fn pick(page: Page, class: u32) {
    if instant(page, class) {
        let explained = page.shown.run.with_untracked(|r| r.explained);
        page.display.map_view.set(if class == explained {
            MapView::Explained
        } else {
            MapView::Class(class)
        });
    } else {
        page.settings.class.set(Some(class));
        run::explain_or_ask(page);
    }
}

#[component]
pub fn ClassesPanel() -> impl IntoView {
    let page = use_page();
    let run = page.shown.run;
    let class = page.settings.class;
    view! {
        <section class="panel classes" aria-label="Classes">
            <Show when=move || run.with(|r| !r.probabilities.is_empty())>
                <p class="predicted" data-testid="predicted">
                    {move || run.with(|r| format!("Predicted: {} (p = {:.3})", r.class_name(r.predicted),
                        r.probabilities.get(r.predicted as usize).copied().unwrap_or(0.0)))}
                </p>
            </Show>
            <ol class="probabilities" data-testid="probabilities">
                {move || {
                    let seen = page.shown_view();
                    run.with(|r| {
                        let seen_class = seen.class(r);
                        listed(r)
                            .into_iter()
                            .map(|c| {
                                let p = r.probabilities[c];
                                let name = r.class_name(c as u32);
                                let predicted = c as u32 == r.predicted;
                                let shown = c as u32 == seen_class;
                                let title = if r.class_maps.is_empty() {
                                    format!("Explain {name}")
                                } else {
                                    format!("Show the evidence for {name}")
                                };
                                view! {
                                    <li class:predicted=predicted class:shown=shown
                                        data-testid=format!("probability-{c}")>
                                        <button class="class-pick" title=title aria-pressed=shown.to_string()
                                            on:click=move |_| pick(page, c as u32)>
                                            <span class="name">{name.clone()}</span>
                                            <span class="bar" style:width=format!("{:.1}%", p * 100.0)></span>
                                            <span class="value">{format!("{p:.3}")}</span>
                                        </button>
                                    </li>
                                }
                            })
                            .collect_view()
                    })
                }}
            </ol>
            <Show when=move || run.with(|r| r.phase == Phase::Done && !r.class_maps.is_empty())>
                <Contrast />
            </Show>
            <p class="class-choice" data-testid="class">
                {move || match class.get() {
                    None if run.with(|r| !r.class_maps.is_empty()) => {
                        "Click a class to see its evidence: no new run needed.".to_string()
                    }
                    None => "Class: the predicted one (click a class above to explain it)".to_string(),
                    Some(c) => format!("Class: {c}"),
                }}
                <Show when=move || class.with(Option::is_some)>
                    <button on:click=move |_| class.set(None)>"back to predicted"</button>
                </Show>
            </p>
        </section>
    }
}

/// "Why A rather than B?": two classes with maps; choosing B shows the
/// difference of their maps.
#[component]
fn Contrast() -> impl IntoView {
    let page = use_page();
    let run = page.shown.run;
    // Classes with a map: the explained one, then the others as sent.
    let choices = move || {
        run.with(|r| {
            std::iter::once(r.explained)
                .chain(r.class_maps.iter().map(|(c, _)| *c))
                .map(|c| (c, r.class_name(c)))
                .collect::<Vec<_>>()
        })
    };
    let first = move || run.with(|r| page.shown_view().class(r));
    let second = move || match page.shown_view() {
        MapView::Contrast(_, b) => Some(b),
        _ => None,
    };
    let show = move |a: u32, b: Option<u32>| {
        let explained = run.with_untracked(|r| r.explained);
        page.display.map_view.set(match b {
            Some(b) if b != a => MapView::Contrast(a, b),
            _ if a == explained => MapView::Explained,
            _ => MapView::Class(a),
        });
    };
    let options = move |selected: Option<u32>| {
        choices()
            .into_iter()
            .map(|(c, name)| {
                view! { <option value=c.to_string() selected=selected == Some(c)>{name}</option> }
            })
            .collect_view()
    };
    view! {
        <p class="contrast" data-testid="contrast">
            <span>"Why"</span>
            <select data-testid="contrast-a" aria-label="Class A"
                on:change=move |ev| {
                    if let Ok(a) = event_target_value(&ev).parse() {
                        show(a, second());
                    }
                }>
                {move || options(Some(first()))}
            </select>
            <span>"rather than"</span>
            <select data-testid="contrast-b" aria-label="Class B"
                on:change=move |ev| show(first(), event_target_value(&ev).parse().ok())>
                <option value="" selected=move || second().is_none()>"(choose a class)"</option>
                {move || options(second())}
            </select>
            <span>"?"</span>
        </p>
    }
}
