//! The page's own types: what the worker offers and answers, as the page
//! holds it. The edge (`api`) makes them from the worker's messages, so
//! generated protobuf types never become page state.

use crate::method::Method;

/// A model the worker serves, with what the page needs to offer it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ModelChoice {
    pub id: String,
    pub name: String,
    /// 1 for grey models (handwritten digits), 3 for photos.
    pub channels: u32,
    /// The windows the conditional sampler has statistics for (empty: the
    /// model samples from training images, any window works).
    pub conditional_windows: Vec<u32>,
    /// The defaults: chosen by measurement on this kind of device where
    /// one was made (`defaults_basis` says how), else efficient PDA with a
    /// stride that finishes in seconds on this worker.
    pub default_method: Method,
    pub default_samples: u32,
    pub default_window: u32,
    pub default_stride: u32,
    /// The share of the windows the default computes (1: every window).
    pub default_budget: f64,
    pub defaults_basis: String,
    pub agreement: Vec<Agreement>,
    /// The reference the agreement is measured against ("PDA, S = 32").
    pub agreement_reference: String,
    /// How far the reference agrees with itself: the most a method can reach.
    pub agreement_ceiling: f64,
    /// Why the gradient methods cannot run on this model (an ONNX file
    /// without TorchScript); empty when they can.
    pub gradients_unavailable: String,
}

impl ModelChoice {
    /// Why `method` cannot run on this model, for people; `None` when it can.
    pub fn refusal(&self, method: Method) -> Option<String> {
        (method.needs_gradients() && !self.gradients_unavailable.is_empty()).then(|| {
            format!(
                "{} needs gradients: {}.",
                method.label(),
                self.gradients_unavailable
            )
        })
    }
}

/// How closely one method's maps follow the reference on a model.
#[derive(Clone, Debug, PartialEq)]
pub struct Agreement {
    pub method: Method,
    /// S, for PDA and the sampled mean (0 otherwise).
    pub samples: u32,
    pub rank_correlation: f64,
    pub top_overlap: f64,
}

/// An image the user chose (a preset or an upload): bytes for the worker,
/// a URL to show it.
#[derive(Clone, Debug, PartialEq)]
pub struct Image {
    pub name: String,
    pub bytes: Vec<u8>,
    pub url: String,
    /// Author and licence, for preset photos.
    pub credit: String,
    /// The true class, for preset digits.
    pub label: u32,
}

impl Image {
    /// The preset's short id: digits by their class, photos by file name.
    pub fn short_id(&self) -> &str {
        self.name.strip_prefix("digit ").unwrap_or(&self.name)
    }
}

/// Everything a run is asked with, besides the image.
#[derive(Clone, Debug, PartialEq)]
pub struct RunSettings {
    pub model: String,
    pub method: Method,
    pub window: u32,
    pub stride: u32,
    pub samples: u32,
    /// None: the predicted class.
    pub class: Option<u32>,
    /// The share of the windows computed (1: every one), the rest estimated
    /// from their neighbours; window methods only.
    pub budget: f64,
}

/// A run to start: the image and its settings.
#[derive(Clone, Debug, PartialEq)]
pub struct RunRequest {
    pub image: Vec<u8>,
    pub settings: RunSettings,
}

/// The worker's estimate of a run on its own device.
#[derive(Clone, Debug, PartialEq)]
pub struct Estimate {
    pub windows: u64,
    pub forward_passes: u64,
    pub seconds: f64,
    /// "CPU", "CUDA"...
    pub device: String,
    pub jobs_ahead: u32,
    /// For a long run: a stride that fits a lesson (0: none needed or none fits).
    pub suggested_stride: u32,
    pub suggested_seconds: f64,
}

/// What a teacher shows the class: an explanation and the settings.
#[derive(Clone, Debug, PartialEq)]
pub struct TeacherView {
    /// Empty until the teacher's first explanation.
    pub explanation: String,
    pub settings: RunSettings,
    /// Which map is shown, as the address says it (`see=`; empty: the
    /// explained class's).
    pub see: String,
}

/// One event of a followed class.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassNews {
    pub view: Option<TeacherView>,
    pub followers: u32,
    pub ended: bool,
    /// The class's short code.
    pub code: String,
}

/// A class just opened.
#[derive(Clone, Debug, PartialEq)]
pub struct OpenedClass {
    pub code: String,
    /// Only the teacher's browser holds it.
    pub secret: String,
    /// What the class link carries instead of the guessable code.
    pub link_token: String,
}

/// How removed pixels look in the faithfulness check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Removal {
    Blur,
    Grey,
}

/// P(class) while pixels are removed (deletion) or put back (insertion) in
/// one order, and the areas under both curves.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Curves {
    pub deletion: Vec<f32>,
    pub insertion: Vec<f32>,
    pub deletion_auc: f64,
    pub insertion_auc: f64,
}

/// A map's faithfulness: its curves beside a random and an edge order.
#[derive(Clone, Debug, PartialEq)]
pub struct Faithfulness {
    pub removal: Removal,
    pub blur_sigma: f64,
    pub steps: u32,
    pub map: Curves,
    pub random: Curves,
    pub random_orders: u32,
    pub edges: Curves,
}

/// What one window of the explanation on screen fed the network (see the
/// worker's `InspectWindow`).
#[derive(Clone, Debug, PartialEq)]
pub struct WindowLook {
    pub x: u32,
    pub y: u32,
    pub size: u32,
    pub channels: u32,
    /// One replacement per sample, `[samples, channels, size, size]`.
    pub replacements: Vec<f32>,
    pub explained: u32,
    pub p_with: f64,
    pub p_samples: Vec<f64>,
    pub p_without: f64,
    pub evidence: f64,
    /// The Laplace correction's N and K.
    pub training_images: u64,
    pub classes: u32,
    pub method: Method,
}

impl WindowLook {
    /// The Laplace-corrected probability the log odds use.
    pub fn corrected(&self, p: f64) -> f64 {
        let n = self.training_images as f64;
        (p * n + 1.0) / (n + self.classes as f64)
    }

    /// log2 of the corrected odds.
    pub fn log2_odds(&self, p: f64) -> f64 {
        let q = self.corrected(p);
        (q / (1.0 - q)).log2()
    }
}
