//! A model ready to explain, whatever it came from: the classifier, its class
//! names, how uploads become its input, and the samplers it has data for.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use tch::Device;

use super::description::Resize;
use super::torchscript::{ModelError, TorchScriptModel};
use crate::digits::{DigitsKit, LoadError};
use crate::engine::{
    Classifier, ConditionalGaussian, EngineError, InputImage, InputShape, MarginalSampler,
    PatchStatistics,
};
use crate::input::{self, InputError};
use crate::methods::MethodError;

pub struct LoadedModel {
    pub name: String,
    pub classifier: Box<dyn Classifier>,
    pub class_names: Vec<String>,
    pub resize: Resize,
    /// Training images for the marginal sampler, when the model has them.
    pub marginal: Option<MarginalSampler>,
    /// Patch statistics for the conditional sampler, when the model has them.
    pub statistics: Option<PatchStatistics>,
    /// Conditional samplers built so far, by window size: their matrices
    /// (and border cases) are computed once and shared by every request.
    conditionals: Mutex<HashMap<usize, Arc<ConditionalGaussian>>>,
}

/// Ridge added to the patch covariance (natural-image covariances are
/// nearly singular) and the data range samples are clipped to.
const RIDGE: f64 = 1e-4;
const DATA_RANGE: (f32, f32) = (0.0, 1.0);

#[derive(Debug, thiserror::Error)]
pub enum LoadModelError {
    #[error(transparent)]
    Digits(#[from] LoadError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("patch statistics of {path}: {source}")]
    Statistics { path: String, source: EngineError },
}

/// The name that loads the built-in digits network.
pub const DIGITS: &str = "digits";

impl LoadedModel {
    /// `spec` is `digits` or a model folder (a path, or a name under `models`).
    pub fn load(
        spec: &str,
        models: &Path,
        data: &Path,
        device: Device,
    ) -> Result<Self, LoadModelError> {
        if spec == DIGITS {
            return Ok(Self::digits(DigitsKit::load(models, data, device)?));
        }
        let folder = if Path::new(spec).join("model.toml").exists() {
            Path::new(spec).to_owned()
        } else {
            models.join(spec)
        };
        let model = TorchScriptModel::load(&folder, device)?;
        let statistics = match &model.description().statistics {
            Some(file) => {
                let path = folder.join(file);
                Some(
                    PatchStatistics::load(&path).map_err(|source| LoadModelError::Statistics {
                        path: path.display().to_string(),
                        source,
                    })?,
                )
            }
            None => None,
        };
        Ok(LoadedModel {
            name: model.description().name.clone(),
            class_names: model.class_names().to_vec(),
            resize: model.description().resize,
            classifier: Box::new(model),
            marginal: None,
            statistics,
            conditionals: Mutex::default(),
        })
    }

    pub fn digits(kit: DigitsKit) -> Self {
        LoadedModel {
            name: "Handwritten digits (six-layer CNN)".into(),
            classifier: Box::new(kit.model),
            class_names: (0..10).map(|c| c.to_string()).collect(),
            resize: Resize::MnistDigit,
            marginal: Some(kit.sampler),
            statistics: None,
            conditionals: Mutex::default(),
        }
    }

    /// An upload converted to this model's input.
    pub fn input_from_bytes(&self, bytes: &[u8]) -> Result<InputImage, InputError> {
        input_for(self.resize, self.classifier.input_shape(), bytes)
    }

    /// The conditional sampler for `window` with a ring of `padding` pixels.
    pub fn conditional(
        &self,
        window: usize,
        padding: usize,
    ) -> Result<Arc<ConditionalGaussian>, MethodError> {
        let Some(stats) = &self.statistics else {
            return Err(MethodError::NoStatistics {
                model: self.name.clone(),
            });
        };
        let side = window + 2 * padding;
        if side != stats.side {
            return Err(MethodError::PatchMismatch {
                model: self.name.clone(),
                window,
                padding,
                side,
                fitted: stats.side,
            });
        }
        let mut built = self.conditionals.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(gaussian) = built.get(&window) {
            return Ok(gaussian.clone());
        }
        let gaussian = Arc::new(ConditionalGaussian::new(
            stats.clone(),
            window,
            DATA_RANGE,
            RIDGE,
        )?);
        built.insert(window, gaussian.clone());
        Ok(gaussian)
    }

    /// The class with this name (exact, or ignoring case).
    pub fn class_by_name(&self, name: &str) -> Option<usize> {
        self.class_names.iter().position(|n| n == name).or_else(|| {
            self.class_names
                .iter()
                .position(|n| n.eq_ignore_ascii_case(name))
        })
    }
}

/// An upload converted to an input of `shape` the way `resize` says.
pub fn input_for(
    resize: Resize,
    shape: InputShape,
    bytes: &[u8],
) -> Result<InputImage, InputError> {
    match resize {
        Resize::MnistDigit => input::digit_from_bytes(bytes),
        Resize::ImagenetCrop => input::photo_from_bytes(bytes, shape),
    }
}
