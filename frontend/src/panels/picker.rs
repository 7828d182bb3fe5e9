//! Model and image: the model picker, the model's presets (held-out
//! digits, or sample photos with their credits), the drawing pad (for a
//! handwriting model), an upload and the camera. Picking an image explains
//! it. Loads the worker's models and, as the model changes,
//! its presets.

use leptos::prelude::*;
use leptos::task::spawn_local;
use web_sys::HtmlInputElement;

use crate::api;
use crate::choose::{choose_image, upload};
use crate::likeness;
use crate::panels::camera::CameraPanel;
use crate::panels::draw::DrawingPad;
use crate::state::{use_page, Page};

/// The worker's models (with each one's defaults, unless the address set
/// them), and the presets of the model chosen, kept current.
fn load_models_and_presets(page: Page) {
    spawn_local(async move {
        match api::models().await {
            Ok(list) => {
                let current = page.settings.model.get_untracked();
                if let Some(m) = list.iter().find(|m| m.id == current) {
                    if !page.link_sets_settings {
                        page.settings.take_defaults(m);
                    }
                }
                page.models.set(list);
            }
            Err(message) => page.fail(message),
        }
    });
    Effect::new(move |_| {
        let model = page.settings.model.get();
        spawn_local(async move {
            match api::presets(model).await {
                Ok(presets) => page.presets.set(presets),
                Err(message) => page.fail(message),
            }
        });
    });
}

/// A watched run (a share link, the teacher's view) shows its image in
/// the picker too: the preset it was made from, if one clearly was.
fn show_watched_image(page: Page) {
    let watched = Memo::new(move |_| page.shown.run.with(|r| r.watched));
    let asked = StoredValue::new(0u64);
    Effect::new(move |_| {
        if !watched.get() {
            return;
        }
        let (Some(input), presets) = (page.shown.input.get(), page.presets.get()) else {
            return;
        };
        let this = asked.get_value() + 1;
        asked.set_value(this);
        spawn_local(async move {
            let found = likeness::preset_shown(&input, &presets).await;
            if asked.get_value() == this && page.image.with_untracked(|i| *i != found) {
                page.image.set(found);
            }
        });
    });
}

/// A person picks another model: its defaults, and no image yet.
fn choose_model(page: Page, id: String) {
    let chosen = page
        .models
        .with_untracked(|all| all.iter().find(|m| m.id == id).cloned());
    if let Some(model) = chosen {
        page.settings.take_defaults(&model);
    }
    page.image.set(None);
    page.settings.model.set(id);
}

#[component]
pub fn PickerPanel() -> impl IntoView {
    let page = use_page();
    load_models_and_presets(page);
    show_watched_image(page);
    view! {
        <section class="panel picker" aria-labelledby="picker-title">
            <h2 id="picker-title">"Model and image"</h2>
            <label class="field wide">
                <span>"Model"</span>
                <select data-testid="model" on:change=move |ev| choose_model(page, event_target_value(&ev))>
                    {move || {
                        page.models
                            .get()
                            .into_iter()
                            .map(|m| {
                                let id = m.id.clone();
                                let selected = move || page.settings.model.with(|current| *current == id);
                                view! { <option value=m.id prop:selected=selected>{m.name}</option> }
                            })
                            .collect_view()
                    }}
                </select>
            </label>
            <Presets />
            <Show when=move || page.model_choice().is_some_and(|m| m.channels == 1)>
                <DrawingPad />
            </Show>
            <label class="upload">
                <span>"…or upload a PNG or JPEG"</span>
                <input type="file" accept="image/png,image/jpeg" data-testid="upload"
                    on:change=move |ev| upload(page, &event_target::<HtmlInputElement>(&ev)) />
            </label>
            <CameraPanel />
            <Credits />
        </section>
    }
}

/// The presets as buttons, the chosen one marked.
#[component]
fn Presets() -> impl IntoView {
    let page = use_page();
    view! {
        <div class="presets" data-testid="presets" role="group" aria-label="Presets">
            {move || {
                page.presets
                    .get()
                    .into_iter()
                    .map(|image| {
                        let url = image.url.clone();
                        let selected = {
                            let url = url.clone();
                            move || page.image.with(|c| c.as_ref().is_some_and(|c| c.url == url))
                        };
                        let id = image.short_id().to_string();
                        let title = if image.credit.is_empty() {
                            image.name.clone()
                        } else {
                            format!("{}: {}", image.name, image.credit)
                        };
                        let alt = format!("preset {} {id}", image.label);
                        view! {
                            <button
                                class="preset"
                                class:selected=selected.clone()
                                aria-pressed=move || selected().to_string()
                                data-testid=format!("preset-{id}")
                                title=title
                                on:click=move |_| choose_image(page, image.clone())
                            >
                                <img src=url alt=alt />
                            </button>
                        }
                    })
                    .collect_view()
            }}
        </div>
    }
}

/// The preset photos' authors and licences.
#[component]
fn Credits() -> impl IntoView {
    let page = use_page();
    view! {
        <ul class="credits" data-testid="credits">
            {move || {
                page.presets
                    .get()
                    .into_iter()
                    .filter(|p| !p.credit.is_empty() && !p.credit.starts_with("MNIST"))
                    .map(|p| view! { <li>{format!("{}: {}", p.name, p.credit)}</li> })
                    .collect_view()
            }}
        </ul>
    }
}
