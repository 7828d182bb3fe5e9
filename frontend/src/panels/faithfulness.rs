//! "How faithful is this map?": the deletion and insertion curves of a
//! finished explanation (computed once on the worker, then kept with it),
//! drawn beside a random and an edge baseline, with the areas under them.

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api;
use crate::domain::{Curves, Faithfulness, Removal};
use crate::run_view::Phase;
use crate::state::use_page;

#[derive(Clone, Debug, PartialEq)]
enum State {
    Idle,
    Checking,
    Shown(Faithfulness),
    Failed(String),
}

/// Under a finished, shared map.
#[component]
pub fn FaithfulnessPanel() -> impl IntoView {
    let page = use_page();
    let shown = page.shown;
    view! {
        <Show when=move || shown.run.with(|r| r.phase == Phase::Done) && shown.share_id.with(Option::is_some)>
            <Check />
        </Show>
    }
}

/// The check of the explanation on screen.
#[component]
fn Check() -> impl IntoView {
    let id = use_page().shown.share_id;
    let state = RwSignal::new(State::Idle);
    let removal = RwSignal::new(Removal::Blur);
    // Another explanation, or another removal: the curves shown no longer apply.
    Effect::new(move |_| {
        id.track();
        removal.track();
        state.set(State::Idle);
    });
    let check = move |_| {
        let Some(id) = id.get_untracked() else {
            return;
        };
        state.set(State::Checking);
        let removal = removal.get_untracked();
        spawn_local(async move {
            state.set(match api::faithfulness(id, removal).await {
                Ok(result) => State::Shown(result),
                Err(message) => State::Failed(message),
            });
        });
    };
    view! {
        <section class="panel faithfulness" data-testid="faithfulness" aria-label="Faithfulness">
            <button data-testid="check-faithfulness" on:click=check
                disabled=move || state.with(|s| *s == State::Checking)>
                "How faithful is this map?"
            </button>
            <label>
                " Removed pixels become "
                <select data-testid="removal" on:change=move |ev| {
                    removal.set(if event_target_value(&ev) == "grey" { Removal::Grey } else { Removal::Blur });
                }>
                    <option value="blur">"blurred"</option>
                    <option value="grey">"grey"</option>
                </select>
            </label>
            {move || match state.get() {
                State::Idle => ().into_any(),
                State::Checking => view! {
                    <p data-testid="faithfulness-status">"Removing pixels in the map's order and in two baseline orders..."</p>
                }.into_any(),
                State::Failed(message) => view! {
                    <p class="error" data-testid="faithfulness-status">{message}</p>
                }.into_any(),
                State::Shown(result) => shown(&result).into_any(),
            }}
        </section>
    }
}

fn shown(result: &Faithfulness) -> impl IntoView {
    let (map, random, edges) = (&result.map, &result.random, &result.edges);
    let verdict = verdict(map, random);
    let summary = format!(
        "Deletion area {:.3} (random {:.3}, edges {:.3}; lower is better). \
         Insertion area {:.3} (random {:.3}, edges {:.3}; higher is better).",
        map.deletion_auc,
        random.deletion_auc,
        edges.deletion_auc,
        map.insertion_auc,
        random.insertion_auc,
        edges.insertion_auc
    );
    view! {
        <div class="curves">
            {chart("Deletion: most evidence removed first", &map.deletion, &random.deletion, &edges.deletion)}
            {chart("Insertion: most evidence put back first", &map.insertion, &random.insertion, &edges.insertion)}
        </div>
        <p data-testid="faithfulness-summary"
            data-deletion-auc=map.deletion_auc.to_string()
            data-insertion-auc=map.insertion_auc.to_string()
            data-random-deletion-auc=random.deletion_auc.to_string()>
            {verdict}" "{summary}
        </p>
        <p class="note">
            {format!(
                "P(explained class) after each {:.0}% of the pixels; removed pixels {}; random: the mean of {} orders.",
                100.0 / result.steps.max(1) as f64,
                if result.removal == Removal::Grey { "turn grey".to_string() }
                    else { format!("are blurred (sigma {:.1} px)", result.blur_sigma) },
                result.random_orders
            )}
        </p>
    }
}

/// One sentence on how the map compares with a random order.
fn verdict(map: &Curves, random: &Curves) -> &'static str {
    let better_deleting = map.deletion_auc < random.deletion_auc;
    let better_inserting = map.insertion_auc > random.insertion_auc;
    match (better_deleting, better_inserting) {
        (true, true) => "The map's order beats a random one both ways.",
        (true, false) | (false, true) => "The map's order beats a random one one way only.",
        (false, false) => "The map's order does no better than a random one.",
    }
}

const WIDTH: f64 = 260.0;
const HEIGHT: f64 = 140.0;

/// A small SVG chart: x = share of pixels, y = P(class) from 0 to 1.
fn chart(title: &'static str, map: &[f32], random: &[f32], edges: &[f32]) -> impl IntoView {
    view! {
        <figure class="curve">
            <svg viewBox=format!("-30 -8 {} {}", WIDTH + 40.0, HEIGHT + 30.0) width="300" role="img"
                aria-label=title>
                <line x1="0" y1=HEIGHT.to_string() x2=WIDTH.to_string() y2=HEIGHT.to_string() class="axis" />
                <line x1="0" y1="0" x2="0" y2=HEIGHT.to_string() class="axis" />
                <text x="-26" y="4" class="tick">"1"</text>
                <text x="-26" y=HEIGHT.to_string() class="tick">"0"</text>
                <text x="0" y=(HEIGHT + 16.0).to_string() class="tick">"0%"</text>
                <text x=(WIDTH - 30.0).to_string() y=(HEIGHT + 16.0).to_string() class="tick">"100%"</text>
                <polyline points=points(random) class="random" />
                <polyline points=points(edges) class="edges" />
                <polyline points=points(map) class="map" />
            </svg>
            <figcaption>{title}" "<span class="key map">"map"</span>" "<span class="key random">"random"</span>" "<span class="key edges">"edges"</span></figcaption>
        </figure>
    }
}

fn points(curve: &[f32]) -> String {
    let last = curve.len().saturating_sub(1).max(1) as f64;
    curve
        .iter()
        .enumerate()
        .map(|(i, &p)| {
            let x = i as f64 / last * WIDTH;
            let y = (1.0 - p.clamp(0.0, 1.0) as f64) * HEIGHT;
            format!("{x:.1},{y:.1}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}
