//! The page's state: one store of signals, made from the address once,
//! provided by the shell (`lib.rs`) and read by every panel through
//! `use_page()`, so panels take no arguments and a new panel never means
//! editing the shell's component. Everything here is the page's own types,
//! and all of `impl Page` is here: what the page reads from the store and
//! the changes that need no worker. The actions that ask the worker (runs
//! in `run.rs`, the class in `classroom.rs`) change the store through them.

use leptos::prelude::*;

use crate::class_maps::{self, MapView};
use crate::domain::{
    Estimate, Image, ModelChoice, RunRequest, RunSettings, TeacherView, WindowLook,
};
use crate::events::Picture;
use crate::heatmap::Heatmap;
use crate::link::{self, PageState};
use crate::method::Method;
use crate::run_view::{Phase, RunView};

/// What the next run is asked with (besides the image).
#[derive(Clone, Copy)]
pub struct Settings {
    pub model: RwSignal<String>,
    pub method: RwSignal<Method>,
    pub window: RwSignal<u32>,
    pub stride: RwSignal<u32>,
    pub samples: RwSignal<u32>,
    /// None: the predicted class.
    pub class: RwSignal<Option<u32>>,
    pub budget: RwSignal<f64>,
}

impl Settings {
    /// The settings, tracked (an effect that reads them reruns on change).
    pub fn get(&self) -> RunSettings {
        RunSettings {
            model: self.model.get(),
            method: self.method.get(),
            window: self.window.get(),
            stride: self.stride.get(),
            samples: self.samples.get(),
            class: self.class.get(),
            budget: self.budget.get(),
        }
    }

    pub fn get_untracked(&self) -> RunSettings {
        untrack(|| self.get())
    }

    /// Takes on settings from elsewhere (a watched run, the teacher's view).
    pub fn set(&self, s: &RunSettings) {
        if !s.model.is_empty() && self.model.get_untracked() != s.model {
            self.model.set(s.model.clone());
        }
        self.method.set(s.method);
        self.window.set(s.window);
        self.stride.set(s.stride);
        self.samples.set(s.samples);
        self.class.set(s.class);
        self.budget.set(s.budget);
    }

    /// A model's default method, S, window, stride and budget.
    pub fn take_defaults(&self, model: &ModelChoice) {
        self.method.set(model.default_method);
        if model.default_samples > 0 {
            self.samples.set(model.default_samples);
        }
        self.window.set(model.default_window);
        self.stride.set(model.default_stride.max(1));
        self.budget.set(model.default_budget);
    }

    /// Whether these are the model's defaults (untracked callers may use
    /// `untrack`).
    pub fn are_defaults_of(&self, model: &ModelChoice) -> bool {
        let uses_samples = model.default_method.uses_samples();
        self.method.get() == model.default_method
            && (!uses_samples || self.samples.get() == model.default_samples)
            && self.window.get() == model.default_window
            && self.stride.get() == model.default_stride.max(1)
            && self.budget.get() == model.default_budget
    }
}

/// How the map is shown.
#[derive(Clone, Copy)]
pub struct Display {
    pub opacity: RwSignal<f64>,
    /// The PDA sample spread instead of the evidence.
    pub show_spread: RwSignal<bool>,
    /// Large type and canvases for a projector.
    pub presentation: RwSignal<bool>,
    /// Which class's map (or which contrast) is shown.
    pub map_view: RwSignal<MapView>,
}

/// The run on screen: its progress, map and input, what the pointer reads.
#[derive(Clone, Copy)]
pub struct Shown {
    pub run: RwSignal<RunView>,
    pub map: RwSignal<Heatmap>,
    pub input: RwSignal<Option<Picture>>,
    /// What the pixel under the pointer says (see `readout`).
    pub reading: RwSignal<Option<String>>,
    /// The explanation's share id.
    pub share_id: RwSignal<Option<String>>,
    /// The window opened to show what the network was fed there.
    pub window: RwSignal<Option<WindowLook>>,
    /// Bumped by every new run; an older run's loop sees it and stops.
    pub generation: RwSignal<u64>,
}

/// This page's part in a class: teacher or student.
#[derive(Clone, Debug, PartialEq)]
pub enum Role {
    Teacher { code: String, secret: String },
    Student { code: String },
}

impl Role {
    pub fn code(&self) -> &str {
        match self {
            Role::Teacher { code, .. } | Role::Student { code } => code,
        }
    }

    /// The role this browser has in the class `code`: the teacher if it
    /// opened it.
    pub fn for_code(code: &str) -> Role {
        match link::CLASSES.get(code) {
            Some(secret) => Role::Teacher {
                code: code.to_string(),
                secret,
            },
            None => Role::Student {
                code: code.to_string(),
            },
        }
    }
}

/// This page's part in a class.
#[derive(Clone, Copy)]
pub struct Classroom {
    pub role: RwSignal<Option<Role>>,
    /// The class's short code, as the worker says (a student who came by
    /// the link has only its token).
    pub code: RwSignal<Option<String>>,
    /// What the teacher shows now.
    pub view: RwSignal<Option<TeacherView>>,
    pub followers: RwSignal<u32>,
    /// A student follows the teacher, or explores on their own.
    pub following: RwSignal<bool>,
    pub ended: RwSignal<bool>,
    /// Bumped to stop following the class's stream.
    pub streams: RwSignal<u64>,
}

impl Classroom {
    pub fn is_student(&self) -> bool {
        self.role
            .with_untracked(|r| matches!(r, Some(Role::Student { .. })))
    }
}

/// The whole page's state.
#[derive(Clone, Copy)]
pub struct Page {
    pub settings: Settings,
    pub display: Display,
    pub models: RwSignal<Vec<ModelChoice>>,
    /// The current model's presets.
    pub presets: RwSignal<Vec<Image>>,
    /// The image the next run explains.
    pub image: RwSignal<Option<Image>>,
    pub shown: Shown,
    /// The worker's estimate for the settings on screen.
    pub estimate: RwSignal<Option<Estimate>>,
    /// Whether the question before a long run is on screen.
    pub asking: RwSignal<bool>,
    /// A status for the person, not an error.
    pub notice: RwSignal<Option<String>>,
    /// The request the side-by-side comparison runs.
    pub compare: RwSignal<Option<RunRequest>>,
    pub class: Classroom,
    /// Whether the address chose the settings (then a model's defaults do
    /// not replace them when the models arrive).
    pub link_sets_settings: bool,
}

impl Page {
    /// The page as the address describes it.
    pub fn from_link(link: &PageState) -> Page {
        let method = link
            .method
            .as_deref()
            .and_then(Method::from_value)
            .unwrap_or(Method::EfficientPda);
        Page {
            settings: Settings {
                model: RwSignal::new(link.model.clone().unwrap_or_else(|| "digits".into())),
                method: RwSignal::new(method),
                window: RwSignal::new(link.window.unwrap_or(4)),
                stride: RwSignal::new(link.stride.unwrap_or(1)),
                samples: RwSignal::new(link.samples.unwrap_or(10)),
                class: RwSignal::new(link.class),
                budget: RwSignal::new(link.budget.filter(|b| *b > 0.0 && *b <= 1.0).unwrap_or(1.0)),
            },
            display: Display {
                opacity: RwSignal::new(link.opacity.unwrap_or(0.8).clamp(0.0, 1.0)),
                show_spread: RwSignal::new(link.view.as_deref() == Some("spread")),
                presentation: RwSignal::new(link.layout.as_deref() == Some("presentation")),
                map_view: RwSignal::new(
                    link.see
                        .as_deref()
                        .map_or(MapView::Explained, MapView::from_link),
                ),
            },
            models: RwSignal::new(Vec::new()),
            presets: RwSignal::new(Vec::new()),
            image: RwSignal::new(None),
            shown: Shown {
                run: RwSignal::new(RunView::default()),
                map: RwSignal::new(Heatmap::default()),
                input: RwSignal::new(None),
                reading: RwSignal::new(None),
                share_id: RwSignal::new(link.explanation.clone()),
                window: RwSignal::new(None),
                generation: RwSignal::new(0),
            },
            estimate: RwSignal::new(None),
            asking: RwSignal::new(false),
            notice: RwSignal::new(None),
            compare: RwSignal::new(None),
            class: Classroom {
                role: RwSignal::new(link.join.as_deref().map(Role::for_code)),
                code: RwSignal::new(None),
                view: RwSignal::new(None),
                followers: RwSignal::new(0),
                following: RwSignal::new(true),
                ended: RwSignal::new(false),
                streams: RwSignal::new(0),
            },
            link_sets_settings: link.method.is_some()
                || link.window.is_some()
                || link.stride.is_some()
                || link.samples.is_some(),
        }
    }

    /// The page as an address (tracked), for the address bar and share links.
    pub fn link_state(&self) -> PageState {
        let s = self.settings;
        let d = self.display;
        PageState {
            model: Some(s.model.get()),
            method: Some(s.method.get().value().to_string()),
            window: Some(s.window.get()),
            stride: Some(s.stride.get()),
            samples: Some(s.samples.get()),
            class: s.class.get(),
            budget: Some(s.budget.get()).filter(|b| *b < 1.0),
            opacity: Some(d.opacity.get()),
            view: Some(
                if d.show_spread.get() {
                    "spread"
                } else {
                    "evidence"
                }
                .to_string(),
            ),
            see: d.map_view.get().to_link(),
            layout: d.presentation.get().then(|| "presentation".to_string()),
            explanation: self.shown.share_id.get(),
            join: self
                .class
                .role
                .with(|r| r.as_ref().map(|r| r.code().to_string())),
        }
    }

    /// The current model's description, once the worker listed it.
    pub fn model_choice(&self) -> Option<ModelChoice> {
        let id = self.settings.model.get();
        self.models
            .with(|all| all.iter().find(|m| m.id == id).cloned())
    }

    /// `model_choice` without subscribing to it.
    pub fn model_choice_untracked(&self) -> Option<ModelChoice> {
        let id = self.settings.model.get_untracked();
        self.models
            .with_untracked(|all| all.iter().find(|m| m.id == id).cloned())
    }

    /// The explanation on screen and its creator's secret, when this
    /// browser made it (it may then cancel and delete it).
    pub fn owned_share(&self) -> Option<(String, String)> {
        let id = self.shown.share_id.get_untracked()?;
        let secret = link::EXPLANATIONS.get(&id)?;
        Some((id, secret))
    }

    /// The view that can be shown now (tracked).
    pub fn shown_view(&self) -> MapView {
        let view = self.display.map_view.get();
        self.shown.map.with(|map| {
            self.shown
                .run
                .with(|run| class_maps::available(view, run, map))
        })
    }

    pub fn shown_view_untracked(&self) -> MapView {
        untrack(|| self.shown_view())
    }

    /// The view that can be shown now, and its map (tracked).
    pub fn displayed(&self) -> (MapView, Heatmap) {
        let view = self.shown_view();
        let map = self.shown.map.with(|map| {
            self.shown
                .run
                .with(|run| class_maps::displayed(view, run, map))
        });
        (view, map)
    }

    /// Whether this browser made the explanation on screen (tracked).
    pub fn owns_shown(&self) -> bool {
        self.shown.share_id.with(|id| {
            id.as_deref()
                .and_then(|id| link::EXPLANATIONS.get(id))
                .is_some()
        })
    }

    /// The request the controls describe, or None (and a message) without
    /// an image.
    pub fn request(&self) -> Option<RunRequest> {
        let Some(image) = self.image.get_untracked() else {
            self.fail("Pick a preset digit or upload an image first.".into());
            return None;
        };
        Some(RunRequest {
            image: image.bytes,
            settings: self.settings.get_untracked(),
        })
    }

    /// The page shows `message` as the run's failure.
    pub fn fail(&self, message: String) {
        self.shown.run.set(RunView {
            phase: Phase::Failed,
            error: Some(message),
            ..Default::default()
        });
    }

    /// A fresh run on screen; its number, which a newer run outdates.
    pub fn begin(&self) -> u64 {
        let shown = self.shown;
        let this_run = shown.generation.get_untracked() + 1;
        shown.generation.set(this_run);
        shown.run.set(RunView {
            phase: Phase::Running,
            ..Default::default()
        });
        shown.reading.set(None);
        shown.window.set(None);
        shown.map.set(Heatmap::default());
        self.notice.set(None);
        this_run
    }

    /// Whether run `this_run` still has the page.
    pub fn is_current(&self, this_run: u64) -> bool {
        self.shown.generation.get_untracked() == this_run
    }

    /// Shows run `this_run`'s failure, unless a newer run took the page.
    pub fn fail_run(&self, this_run: u64, message: String) {
        if self.is_current(this_run) {
            self.shown.run.update(|r| {
                r.phase = Phase::Failed;
                r.error = Some(message);
            });
        }
    }
}

/// The page's state, as provided by the shell.
pub fn use_page() -> Page {
    expect_context::<Page>()
}
