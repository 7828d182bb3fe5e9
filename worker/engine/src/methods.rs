//! The methods a person can pick, over any [`LoadedModel`]: turns a choice
//! (method, sampler, samples, padding) into the engine's fill and call. The
//! command line and the server both go through here, so they give the same
//! map for the same request.

use std::ops::ControlFlow;

use crate::engine::{
    explain, gradcam_explain, gradient_explain, saliency_explain, ConditionalMean, ConditionalPda,
    EfficientPda, ExplainParams, Explanation, InputImage, Occlusion, Pda, Progress, Quantity,
    SampledMean, WindowFill,
};
// The error a model gives when it lacks what a method needs; it lives with
// the models so that they need nothing from here.
use crate::models::LoadedModel;
pub use crate::models::MethodError;

/// Also the CLI's `--method` values (kebab-case: `efficient-pda`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum MethodKind {
    /// Algorithm 1: S samples per window, mean of the probabilities.
    Pda,
    /// Algorithm 2: the window replaced by its (conditional) mean.
    EfficientPda,
    /// The empirical mean of S samples, one pass per window (paper Fig. 15).
    SampledMean,
    /// Algorithm 3: one forward and one backward pass.
    Gradient,
    /// The drop in P(c) when the window is filled with a constant.
    Occlusion,
    /// |dP/dx| per pixel (Simonyan et al.).
    Saliency,
    /// Grad-CAM on the last convolutional features (Selvaraju et al.).
    GradCam,
}

impl MethodKind {
    pub const ALL: [MethodKind; 7] = [
        MethodKind::Pda,
        MethodKind::EfficientPda,
        MethodKind::SampledMean,
        MethodKind::Gradient,
        MethodKind::Occlusion,
        MethodKind::Saliency,
        MethodKind::GradCam,
    ];

    /// The method's name on the command line, in reports and in the
    /// measurements kept beside a model ("efficient-pda").
    pub fn name(self) -> &'static str {
        match self {
            MethodKind::Pda => "pda",
            MethodKind::EfficientPda => "efficient-pda",
            MethodKind::SampledMean => "sampled-mean",
            MethodKind::Gradient => "gradient",
            MethodKind::Occlusion => "occlusion",
            MethodKind::Saliency => "saliency",
            MethodKind::GradCam => "grad-cam",
        }
    }

    /// The method with this `name`, if there is one.
    pub fn from_name(name: &str) -> Option<MethodKind> {
        Self::ALL.into_iter().find(|kind| kind.name() == name)
    }

    /// What the method's map measures.
    pub fn quantity(self) -> Quantity {
        match self {
            MethodKind::Occlusion | MethodKind::Saliency => Quantity::Probability,
            MethodKind::GradCam => Quantity::Logit,
            _ => Quantity::LogOdds,
        }
    }

    /// The methods that differentiate the network (libtorch only).
    pub fn needs_gradients(self) -> bool {
        self.one_class_per_run()
    }

    /// Gradient methods give the map of one class per backward pass.
    pub fn one_class_per_run(self) -> bool {
        matches!(
            self,
            MethodKind::Gradient | MethodKind::Saliency | MethodKind::GradCam
        )
    }
}

/// Refuses a budget below 1 (`ExplainParams::budget`) for a method that
/// has no windows to leave out: the gradient methods.
pub fn check_budget(kind: MethodKind, budget: f64) -> Result<(), MethodError> {
    if kind.needs_gradients() && budget < 1.0 {
        return Err(MethodError::BudgetWithoutWindows {
            method: kind.name(),
        });
    }
    Ok(())
}

/// Also the CLI's `--sampler` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum SamplerKind {
    /// Conditional when the model has patch statistics, marginal otherwise.
    Auto,
    /// Training images at the same pixels (the digits model).
    Marginal,
    /// Gaussian of the window given its ring (photo models).
    Conditional,
}

/// Ring width around the window for the conditional sampler (l = k + 2p
/// must be the side of the model's patch statistics: 18 for k = 10).
pub const DEFAULT_PADDING: usize = 4;
/// Grey level occlusion fills windows with.
pub const DEFAULT_OCCLUSION_VALUE: f32 = 0.5;

#[derive(Clone, Debug)]
pub struct MethodChoice {
    pub kind: MethodKind,
    pub sampler: SamplerKind,
    /// S, for PDA and the sampled mean.
    pub samples: usize,
    /// Ring width around the window for the conditional sampler.
    pub padding: usize,
    /// Grey level that occlusion fills windows with.
    pub occlusion_value: f32,
}

/// The window fill a choice needs on this model (for saliency, which uses
/// none, an unused constant fill).
pub fn window_fill<'a>(
    model: &'a LoadedModel,
    choice: &MethodChoice,
    window: usize,
) -> Result<Box<dyn WindowFill + 'a>, MethodError> {
    let samples = choice.samples;
    if let MethodKind::Occlusion | MethodKind::Saliency | MethodKind::GradCam = choice.kind {
        return Ok(Box::new(Occlusion {
            value: choice.occlusion_value,
        }));
    }
    let conditional = match choice.sampler {
        SamplerKind::Conditional => true,
        SamplerKind::Marginal => false,
        SamplerKind::Auto => !model.statistics.is_empty(),
    };
    if conditional {
        let gaussian = model.conditional(window, choice.padding)?;
        return Ok(match choice.kind {
            MethodKind::Pda => Box::new(ConditionalPda { gaussian, samples }),
            MethodKind::SampledMean => Box::new(SampledMean {
                draws: ConditionalPda { gaussian, samples },
            }),
            _ => Box::new(ConditionalMean { gaussian }),
        });
    }
    let sampler = model
        .marginal
        .as_ref()
        .ok_or_else(|| MethodError::NoTrainingImages {
            model: model.name.clone(),
        })?;
    Ok(match choice.kind {
        MethodKind::Pda => Box::new(Pda { sampler, samples }),
        MethodKind::SampledMean => Box::new(SampledMean {
            draws: Pda { sampler, samples },
        }),
        _ => Box::new(EfficientPda { sampler }),
    })
}

/// Runs the chosen method.
pub fn run(
    model: &LoadedModel,
    kind: MethodKind,
    fill: &dyn WindowFill,
    image: &InputImage,
    params: &ExplainParams,
    on_progress: &mut dyn FnMut(Progress) -> ControlFlow<()>,
) -> Result<Explanation, MethodError> {
    let classifier = if kind.needs_gradients() {
        model.gradient_classifier(kind.name())?
    } else {
        model.classifier.as_ref()
    };
    Ok(match kind {
        MethodKind::Gradient => gradient_explain(classifier, image, fill, params, on_progress),
        MethodKind::Saliency => saliency_explain(classifier, image, params, on_progress),
        MethodKind::GradCam => gradcam_explain(classifier, image, params, on_progress),
        _ => explain(classifier, image, fill, params, on_progress),
    }?)
}
