//! A model ready to explain, whatever it came from: the classifier, its class
//! names, how uploads become its input, and the samplers it has data for.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tch::{Device, Kind, Tensor};

use super::description::Resize;
use super::torchscript::{ModelError, Precision, TorchScriptModel};
use crate::engine::{
    Classifier, ConditionalGaussian, EngineError, InputImage, InputShape, MarginalSampler,
    PatchStatistics,
};
use crate::input::{self, InputError};

/// Why a method cannot run on a model (a sampler without its data), or the
/// engine's own error.
#[derive(Debug, thiserror::Error)]
pub enum MethodError {
    #[error("{model} has no patch statistics for the conditional sampler")]
    NoStatistics { model: String },
    #[error("window {window} with padding {padding} makes {side} x {side} patches, but {model} has patch statistics (for the conditional sampler) for windows {windows} only, with padding {padding}")]
    PatchMismatch {
        model: String,
        window: usize,
        padding: usize,
        side: usize,
        windows: String,
    },
    #[error("{model} has no training images for the marginal sampler")]
    NoTrainingImages { model: String },
    #[error(transparent)]
    Engine(#[from] EngineError),
}

pub struct LoadedModel {
    pub name: String,
    /// The model's folder (its description, weights and measurements).
    pub folder: PathBuf,
    pub classifier: Box<dyn Classifier>,
    pub class_names: Vec<String>,
    pub resize: Resize,
    pub precision: Precision,
    /// Training images for the marginal sampler, when the model has them.
    pub marginal: Option<MarginalSampler>,
    /// Patch statistics for the conditional sampler, one per patch side
    /// (none when the model has no conditional sampler).
    pub statistics: Vec<PatchStatistics>,
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
    Model(#[from] ModelError),
    #[error("patch statistics of {path}: {source}")]
    Statistics { path: String, source: EngineError },
    #[error("training images {path}: {message}")]
    Marginal { path: String, message: String },
}

/// The id of the digits network (the default model of a request).
pub const DIGITS: &str = "digits";

impl LoadedModel {
    /// `spec` is a model folder: a path, or a folder name under `models`.
    pub fn load(
        spec: &str,
        models: &Path,
        device: Device,
        precision: Precision,
    ) -> Result<Self, LoadModelError> {
        let folder = if Path::new(spec).join("model.toml").exists() {
            Path::new(spec).to_owned()
        } else {
            models.join(spec)
        };
        let model = TorchScriptModel::load_with(&folder, device, precision)?;
        let description = model.description();
        let statistics = description
            .statistics
            .iter()
            .map(|file| {
                let path = folder.join(file);
                PatchStatistics::load(&path).map_err(|source| LoadModelError::Statistics {
                    path: path.display().to_string(),
                    source,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let marginal = match &description.marginal {
            Some(file) => Some(load_marginal(&folder.join(file), model.input_shape())?),
            None => None,
        };
        Ok(LoadedModel {
            name: description.name.clone(),
            folder: folder.clone(),
            class_names: model.class_names().to_vec(),
            resize: description.resize,
            precision,
            classifier: Box::new(model),
            marginal,
            statistics,
            conditionals: Mutex::default(),
        })
    }

    /// Replaces the conditional sampler's patch statistics of their side
    /// (the samplers built from the old ones are dropped).
    pub fn set_statistics(&mut self, statistics: PatchStatistics) {
        self.statistics.retain(|s| s.side != statistics.side);
        self.statistics.push(statistics);
        self.conditionals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
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
        if self.statistics.is_empty() {
            return Err(MethodError::NoStatistics {
                model: self.name.clone(),
            });
        }
        let side = window + 2 * padding;
        let Some(stats) = self.statistics.iter().find(|s| s.side == side) else {
            return Err(MethodError::PatchMismatch {
                model: self.name.clone(),
                window,
                padding,
                side,
                windows: list(&self.conditional_windows(padding)),
            });
        };
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

    /// The windows the conditional sampler works for with a ring of
    /// `padding` pixels, smallest first.
    pub fn conditional_windows(&self, padding: usize) -> Vec<usize> {
        let mut windows: Vec<usize> = self
            .statistics
            .iter()
            .filter_map(|s| s.side.checked_sub(2 * padding))
            .filter(|&w| w > 0)
            .collect();
        windows.sort_unstable();
        windows
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

/// The marginal sampler over the `images` tensor of a safetensors file.
fn load_marginal(path: &Path, shape: InputShape) -> Result<MarginalSampler, LoadModelError> {
    let invalid = |message: String| LoadModelError::Marginal {
        path: path.display().to_string(),
        message,
    };
    let tensors = Tensor::read_safetensors(path).map_err(|e| invalid(e.to_string()))?;
    let (_, images) = tensors
        .into_iter()
        .find(|(name, _)| name == "images")
        .ok_or_else(|| invalid("no tensor named `images`".into()))?;
    let size = images.size();
    let expected = [shape.channels, shape.height, shape.width].map(|d| d as i64);
    if size.len() != 4 || size[1..] != expected || size[0] == 0 {
        return Err(invalid(format!(
            "images have shape {size:?}, the model takes N x {expected:?}"
        )));
    }
    let values = Vec::<f32>::try_from(images.to_kind(Kind::Float).flatten(0, -1))
        .map_err(|e| invalid(e.to_string()))?;
    Ok(MarginalSampler::new(shape, values))
}

/// "6, 10, 16 and 24".
fn list(windows: &[usize]) -> String {
    let words: Vec<String> = windows.iter().map(|w| w.to_string()).collect();
    match words.split_last() {
        None => "none".into(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}
