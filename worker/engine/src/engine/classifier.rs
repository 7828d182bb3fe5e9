//! What the engine needs from a network: the input shape it takes and class
//! scores (logits) for a batch. The engine never trains and never sees gRPC.

use tch::{Device, TchError, Tensor};

use super::error::EngineError;

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
    /// The dimensions of a batch of `images`: `[B, C, H, W]`.
    pub fn batch(&self, images: usize) -> [i64; 4] {
        [
            images as i64,
            self.channels as i64,
            self.height as i64,
            self.width as i64,
        ]
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
    /// A user's model may fail on some batches (a bug, out of memory): that
    /// is an error here, never a panic.
    fn logits(&self, batch: &Tensor) -> Result<Tensor, TchError>;

    /// The last convolutional feature map `[B, F, h, w]`, for Grad-CAM;
    /// `Ok(None)` when the model does not expose it.
    fn features(&self, _batch: &Tensor) -> Result<Option<Tensor>, TchError> {
        Ok(None)
    }

    /// Logits from `features(batch)` (the rest of the network).
    fn head(&self, _features: &Tensor) -> Result<Option<Tensor>, TchError> {
        Ok(None)
    }

    /// P(c | x): the softmax of the logits.
    fn probabilities(&self, batch: &Tensor) -> Result<Tensor, TchError> {
        self.logits(batch)?.f_softmax(-1, tch::Kind::Float)
    }
}

/// Logits of a batch as f32, with a model's failure turned into an engine
/// error that says what failed (out of memory gets its own error, so the
/// caller can suggest a smaller batch).
pub(crate) fn logits_of(model: &dyn Classifier, batch: &Tensor) -> Result<Tensor, EngineError> {
    let images = batch.size().first().copied().unwrap_or(0) as usize;
    let logits = model
        .logits(batch)
        .and_then(|logits| logits.f_to_kind(tch::Kind::Float))
        .map_err(|error| EngineError::from_model(error, images))?;
    let expected = vec![images as i64, model.num_classes() as i64];
    if logits.size() != expected {
        return Err(EngineError::Model {
            images,
            message: format!(
                "it returned shape {:?} where {expected:?} (images x classes) was expected",
                logits.size()
            ),
        });
    }
    Ok(logits)
}

/// An image in the model's input space: f32, channel-major `[C, H, W]`.
#[derive(Clone, Debug, PartialEq)]
pub struct InputImage {
    pub shape: InputShape,
    pub values: Vec<f32>,
}
