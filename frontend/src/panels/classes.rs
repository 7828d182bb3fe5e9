//! Classes: what the network predicted, P(class | image) for every class
//! when there are few (digits), else the top five, and which class the map
//! explains. Clicking a class explains it.

use leptos::prelude::*;

use crate::state::use_page;

#[component]
pub fn ClassesPanel() -> impl IntoView {
    let page = use_page();
    let run = page.shown.run;
    let class = page.settings.class;
    let pick = move |c: u32| {
        class.set(Some(c));
        page.explain_or_ask();
    };
    view! {
        <section class="panel classes" aria-label="Classes">
            <Show when=move || run.with(|r| !r.probabilities.is_empty())>
                <p class="predicted" data-testid="predicted">
                    {move || run.with(|r| format!("Predicted: {} (p = {:.3})", r.class_name(r.predicted),
                        r.probabilities.get(r.predicted as usize).copied().unwrap_or(0.0)))}
                </p>
            </Show>
            <ol class="probabilities" data-testid="probabilities">
                {move || run.with(|r| {
                    let mut shown: Vec<usize> = (0..r.probabilities.len()).collect();
                    if shown.len() > 10 {
                        shown.sort_by(|&a, &b| r.probabilities[b].total_cmp(&r.probabilities[a]));
                        shown.truncate(5);
                    }
                    shown
                        .into_iter()
                        .map(|c| {
                            let p = r.probabilities[c];
                            let name = r.class_name(c as u32);
                            let predicted = c as u32 == r.predicted;
                            view! {
                                <li class:predicted=predicted data-testid=format!("probability-{c}")>
                                    <button class="class-pick" title=format!("Explain {name}")
                                        on:click=move |_| pick(c as u32)>
                                        <span class="name">{name.clone()}</span>
                                        <span class="bar" style:width=format!("{:.1}%", p * 100.0)></span>
                                        <span class="value">{format!("{p:.3}")}</span>
                                    </button>
                                </li>
                            }
                        })
                        .collect_view()
                })}
            </ol>
            <p class="class-choice" data-testid="class">
                {move || match class.get() {
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
