//! The explanation methods as the page names them. The worker's enum stays
//! at the edge (`api`); the page holds this one.

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Method {
    #[default]
    EfficientPda,
    Pda,
    SampledMean,
    Gradient,
    Occlusion,
    Saliency,
    GradCam,
}

impl Method {
    /// In the picker's order.
    pub const ALL: [Method; 7] = [
        Method::EfficientPda,
        Method::Pda,
        Method::SampledMean,
        Method::Gradient,
        Method::Occlusion,
        Method::Saliency,
        Method::GradCam,
    ];

    /// The name in the address (`method=`) and the picker's option value.
    pub fn value(self) -> &'static str {
        match self {
            Method::EfficientPda => "efficient",
            Method::Pda => "pda",
            Method::SampledMean => "sampled-mean",
            Method::Gradient => "gradient",
            Method::Occlusion => "occlusion",
            Method::Saliency => "saliency",
            Method::GradCam => "grad-cam",
        }
    }

    pub fn from_value(value: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.value() == value)
    }

    /// Short, so the picker never cuts it off; `description` says the rest.
    pub fn label(self) -> &'static str {
        match self {
            Method::EfficientPda => "Efficient PDA",
            Method::Pda => "PDA",
            Method::SampledMean => "Sampled mean",
            Method::Gradient => "Gradient",
            Method::Occlusion => "Occlusion",
            Method::Saliency => "Saliency",
            Method::GradCam => "Grad-CAM",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Method::EfficientPda => "The window replaced by its mean: 1 pass per window.",
            Method::Pda => "S samples per window (Zintgraf et al. 2017, Algorithm 1).",
            Method::SampledMean => "The mean of S samples: 1 pass per window.",
            Method::Gradient => "Algorithm 3: 1 forward and 1 backward pass.",
            Method::Occlusion => "The drop in probability when the window turns grey.",
            Method::Saliency => "Saliency: the gradient's magnitude |dP/dx| per pixel.",
            Method::GradCam => "Grad-CAM on the last convolutional features.",
        }
    }

    /// Whether the method differentiates the network (which needs the model
    /// as TorchScript).
    pub fn needs_gradients(self) -> bool {
        matches!(self, Method::Gradient | Method::Saliency | Method::GradCam)
    }

    /// Whether S (samples per window) applies.
    pub fn uses_samples(self) -> bool {
        matches!(self, Method::Pda | Method::SampledMean)
    }

    /// Whether the map is made window by window (not per pixel).
    pub fn has_windows(self) -> bool {
        !matches!(self, Method::Saliency | Method::GradCam)
    }

    /// Whether the method puts something into each window and runs the
    /// network on it (so there is something to look at inside a window).
    pub fn replaces_windows(self) -> bool {
        matches!(
            self,
            Method::Pda | Method::EfficientPda | Method::SampledMean | Method::Occlusion
        )
    }

    /// What the method put into a window, for the window panel.
    pub fn replacement(self) -> &'static str {
        match self {
            Method::Pda => "each sample drawn for the window (PDA averages P over them)",
            Method::EfficientPda => "the window's expected value given its surroundings (one pass)",
            Method::SampledMean => "the mean of the samples drawn for the window (one pass)",
            Method::Occlusion => "a grey square",
            _ => "nothing: this method takes gradients",
        }
    }
}
