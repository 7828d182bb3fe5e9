//! A model ready to explain, whatever it came from: the classifier, its class
//! names, how uploads become its input, and the samplers it has data for.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use tch::{Device, Kind, Tensor};

use super::description::{ModelDescription, Resize};
use super::onnx::{OnnxError, OnnxModel};
use super::runtime::Runtime;
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
    #[error("{method} needs the network's gradients, which only libtorch computes, and {model} is an ONNX file without TorchScript: pick PDA, efficient PDA, the sampled mean or occlusion")]
    NeedsTorchScript { model: String, method: &'static str },
    #[error("{method} computes every pixel in a few passes: a budget applies to the window methods (PDA, efficient PDA, the sampled mean, occlusion)")]
    BudgetWithoutWindows { method: &'static str },
    #[error("{model}'s TorchScript file, for the gradient methods: {message}")]
    TorchScript { model: String, message: String },
    #[error(transparent)]
    Engine(#[from] EngineError),
}

pub struct LoadedModel {
    pub name: String,
    /// The model's folder (its description, weights and measurements).
    pub folder: PathBuf,
    /// The network the window methods run (on `runtime`).
    pub classifier: Box<dyn Classifier>,
    pub runtime: Runtime,
    pub class_names: Vec<String>,
    pub resize: Resize,
    pub precision: Precision,
    /// The device asked for (an ONNX model runs on the CPU whatever it is).
    pub device: Device,
    /// Whether the folder has the network as TorchScript (the gradient
    /// methods need it).
    pub has_torchscript: bool,
    /// The TorchScript network for the gradient methods when the window
    /// methods run on ONNX Runtime, loaded when first asked for.
    torchscript: OnceLock<Result<TorchScriptModel, String>>,
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
    #[error(transparent)]
    Onnx(#[from] OnnxError),
    #[error("half precision runs on libtorch (CUDA) only, not on ONNX Runtime")]
    HalfOnOnnx,
    #[error("patch statistics of {path}: {source}")]
    Statistics { path: String, source: EngineError },
    #[error("training images {path}: {message}")]
    Marginal { path: String, message: String },
}

/// The id of the digits network (the default model of a request).
pub const DIGITS: &str = "digits";

/// Where a model runs: the device and precision (libtorch), and the runtime
/// of its window methods (`None`: `Runtime::default_for`).
#[derive(Clone, Copy, Debug)]
pub struct Placement {
    pub device: Device,
    pub precision: Precision,
    pub runtime: Option<Runtime>,
}

impl Placement {
    /// `device` in full precision, on the runtime the model runs best on.
    pub fn on(device: Device) -> Self {
        Placement {
            device,
            precision: Precision::Full,
            runtime: None,
        }
    }

    /// libtorch on `device` in full precision.
    pub fn torch(device: Device) -> Self {
        Placement {
            device,
            precision: Precision::Full,
            runtime: Some(Runtime::Torch),
        }
    }
}

impl LoadedModel {
    /// `spec` is a model folder: a path, or a folder name under `models`.
    /// On libtorch (the research commands' runtime: they need gradients and
    /// named parameters).
    pub fn load(
        spec: &str,
        models: &Path,
        device: Device,
        precision: Precision,
    ) -> Result<Self, LoadModelError> {
        let placement = Placement {
            precision,
            ..Placement::torch(device)
        };
        Self::load_on(spec, models, placement)
    }

    /// `load` on the runtime `placement` picks.
    pub fn load_on(
        spec: &str,
        models: &Path,
        placement: Placement,
    ) -> Result<Self, LoadModelError> {
        let folder = if Path::new(spec).join("model.toml").exists() {
            Path::new(spec).to_owned()
        } else {
            models.join(spec)
        };
        let description =
            ModelDescription::read(&folder.join("model.toml")).map_err(ModelError::from)?;
        let device = placement.device;
        if placement.precision == Precision::Half && !device.is_cuda() {
            return Err(ModelError::HalfNeedsCuda(device).into());
        }
        let runtime = placement
            .runtime
            .unwrap_or_else(|| Runtime::default_for(&description, device));
        // Half precision is libtorch's (CUDA autocast): a model that runs on
        // ONNX Runtime because it has no TorchScript runs in full precision;
        // asking for both explicitly is an error below.
        let only_onnx = description.torchscript_file().is_none();
        let precision = match placement.runtime {
            None if only_onnx => Precision::Full,
            _ => placement.precision,
        };
        let (classifier, class_names): (Box<dyn Classifier>, _) = match runtime {
            Runtime::Torch => {
                let model = TorchScriptModel::load_with(&folder, device, precision)?;
                let names = model.class_names().to_vec();
                (Box::new(model), names)
            }
            Runtime::Onnx if precision == Precision::Half => {
                return Err(LoadModelError::HalfOnOnnx)
            }
            Runtime::Onnx => {
                let model = OnnxModel::load(&folder, tch::get_num_threads().max(1) as usize)?;
                let names = model.class_names().to_vec();
                (Box::new(model), names)
            }
        };
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
            Some(file) => Some(load_marginal(&folder.join(file), description.shape())?),
            None => None,
        };
        Ok(LoadedModel {
            name: description.name.clone(),
            folder,
            classifier,
            runtime,
            class_names,
            resize: description.resize,
            precision,
            device,
            has_torchscript: description.torchscript_file().is_some(),
            torchscript: OnceLock::new(),
            marginal,
            statistics,
            conditionals: Mutex::default(),
        })
    }

    /// What computes this model's maps (`computed_by`): the gradient
    /// methods run on libtorch, the window methods on `runtime`.
    pub fn computed_by(&self, gradients: bool) -> String {
        let runtime = if gradients {
            Runtime::Torch
        } else {
            self.runtime
        };
        super::runtime::computed_by(runtime, self.device, self.precision)
    }

    /// The network the gradient methods differentiate: TorchScript on
    /// libtorch, whatever runs the window methods.
    pub fn gradient_classifier(
        &self,
        method: &'static str,
    ) -> Result<&dyn Classifier, MethodError> {
        if self.runtime == Runtime::Torch {
            return Ok(self.classifier.as_ref());
        }
        if !self.has_torchscript {
            return Err(MethodError::NeedsTorchScript {
                model: self.name.clone(),
                method,
            });
        }
        let loaded = self.torchscript.get_or_init(|| {
            TorchScriptModel::load_with(&self.folder, self.device, self.precision)
                .map_err(|e| e.to_string())
        });
        match loaded {
            Ok(model) => Ok(model),
            Err(message) => Err(MethodError::TorchScript {
                model: self.name.clone(),
                message: message.clone(),
            }),
        }
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
