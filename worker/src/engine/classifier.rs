//! What the engine needs from a network: the input shape it takes and class
//! scores (logits) for a batch. The engine never trains and never sees gRPC.

use tch::{Device, Tensor};

/// Channels, height and width of one input image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InputShape {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

impl InputShape {
    pub fn pixels(&self) -> usize {
        self.height * self.width
    }
    pub fn values(&self) -> usize {
        self.channels * self.pixels()
    }
}

pub trait Classifier: Send {
    fn input_shape(&self) -> InputShape;
    fn num_classes(&self) -> usize;
    /// Size of the training set, for the Laplace correction of probabilities.
    fn training_images(&self) -> usize;
    fn device(&self) -> Device;
    /// Logits for a batch `[B, C, H, W]` of f32 values on `device()`, as
    /// `[B, K]` f32 (for a network that outputs probabilities: their logs,
    /// which the softmax maps back to them). Differentiable in the input.
    fn logits(&self, batch: &Tensor) -> Tensor;

    /// The last convolutional feature map `[B, F, h, w]`, for Grad-CAM;
    /// `None` when the model does not expose it.
    fn features(&self, _batch: &Tensor) -> Option<Tensor> {
        None
    }

    /// Logits from `features(batch)` (the rest of the network).
    fn head(&self, _features: &Tensor) -> Option<Tensor> {
        None
    }

    /// P(c | x): the softmax of the logits.
    fn probabilities(&self, batch: &Tensor) -> Tensor {
        self.logits(batch).softmax(-1, tch::Kind::Float)
    }
}

/// An image in the model's input space: f32, channel-major `[C, H, W]`.
#[derive(Clone, Debug, PartialEq)]
pub struct InputImage {
    pub shape: InputShape,
    pub values: Vec<f32>,
}
