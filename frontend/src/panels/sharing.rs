//! Sharing and downloads: the link to the explanation on screen (with the
//! view's settings), the finished map as `.npy` and PNG and over the input,
//! and, for the browser that made it, deleting it.

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api;
use crate::export;
use crate::link;
use crate::run_view::Phase;
use crate::state::{use_page, Page};

fn delete(page: Page) {
    let Some((id, owner_secret)) = page.owned_share() else {
        return;
    };
    spawn_local(async move {
        match api::delete(id.clone(), owner_secret).await {
            Ok(()) => {
                link::EXPLANATIONS.forget(&id);
                page.shown.share_id.set(None);
                page.notice
                    .set(Some("Deleted: the link no longer opens.".into()));
            }
            Err(message) => page.notice.set(Some(message)),
        }
    });
}

/// Which download a button offers.
#[derive(Clone, Copy)]
enum Download {
    Values,
    Map,
    Overlay,
}

fn download(page: Page, what: Download) {
    let stem = format!(
        "evidence-{}",
        page.shown.share_id.get_untracked().unwrap_or_default()
    );
    page.shown.map.with_untracked(|map| match what {
        Download::Values => export::download_npy(map, &stem),
        Download::Map => export::download_map(map, &stem),
        Download::Overlay => page.shown.input.with_untracked(|input| {
            if let Some(input) = input {
                let opacity = page.display.opacity.get_untracked();
                export::download_overlay(input, map, opacity, &stem);
            }
        }),
    });
}

#[component]
pub fn SharingPanel() -> impl IntoView {
    let page = use_page();
    let done = move || page.shown.run.with(|r| r.phase == Phase::Done);
    view! {
        <Show when=move || page.shown.share_id.with(Option::is_some)>
            <section class="panel share" data-testid="share" aria-label="Share and download">
                <label class="field wide">
                    <span>"Share link"</span>
                    <input readonly data-testid="share-link"
                        prop:value=move || link::share_url(&page.link_state()) />
                </label>
                <div class="actions">
                    <Show when=done>
                        <span class="downloads">
                            "Download: "
                            <button data-testid="download-npy" on:click=move |_| download(page, Download::Values)>"map (.npy)"</button>
                            <button data-testid="download-map" on:click=move |_| download(page, Download::Map)>"map (PNG)"</button>
                            <button data-testid="download-overlay" on:click=move |_| download(page, Download::Overlay)>"overlay (PNG)"</button>
                        </span>
                    </Show>
                    <Show when=move || page.owns_shown()>
                        <button class="delete" data-testid="delete" on:click=move |_| delete(page)>
                            "Delete this explanation"
                        </button>
                    </Show>
                </div>
            </section>
        </Show>
    }
}
