//! A classifier from a TorchScript file and its description: the models
//! folder's unit. Perturbation passes run under `no_grad` (the engine's
//! guard) with the module in evaluation mode. On CUDA the module may run in
//! half precision (autocast: fp16 where it is safe, the file unchanged), so
//! any user's model gets it.

use std::path::{Path, PathBuf};

use tch::{CModule, Device, Kind, TchError, Tensor};

use super::autocast::with_cuda_autocast;
use super::description::{DescriptionError, ModelDescription, Output};
use crate::engine::{Classifier, InputShape};

/// The arithmetic a model runs in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Precision {
    /// f32 everywhere.
    #[default]
    Full,
    /// CUDA autocast: convolutions and matrix products in fp16 (tensor
    /// cores), reductions and softmax in f32. CUDA only.
    Half,
}

pub struct TorchScriptModel {
    module: CModule,
    precision: Precision,
    /// Whether the module has `features` and `head` methods (for Grad-CAM).
    exposes_features: bool,
    description: ModelDescription,
    class_names: Vec<String>,
    device: Device,
}

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    Description(#[from] DescriptionError),
    #[error("cannot load the TorchScript file {path}: {source}")]
    Module {
        path: PathBuf,
        source: tch::TchError,
    },
    #[error("cannot read the class names {path}: {source}")]
    Classes {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} gives {got} outputs for a test input, but the class list has {expected} names"
    )]
    ClassCount {
        path: PathBuf,
        got: i64,
        expected: usize,
    },
    #[error("{path} names no `parameters` file (the network with named parameters the sanity checks need)")]
    NoParameters { path: PathBuf },
    #[error("{path} is an ONNX file, and libtorch needs the model as TorchScript")]
    OnlyOnnx { path: PathBuf },
    #[error("half precision runs on CUDA only, and the device is {0:?}")]
    HalfNeedsCuda(Device),
    #[error("{path} failed on a test input of shape {shape:?}: {message}")]
    Forward {
        path: PathBuf,
        shape: InputShape,
        message: String,
    },
}

/// How far two ways of computing the same network's outputs may differ
/// (the network split in two, or frozen against not frozen). On CUDA f32
/// convolutions run in TF32 (10-bit mantissa) and the two ways pick other
/// kernels: on an H200 they differed by more than 1e-4 (up to 2e-3 in
/// probability); a wrong network is off by far more.
pub fn same_result_tolerance(device: Device, precision: Precision) -> f64 {
    match precision {
        Precision::Full if !device.is_cuda() => 1e-4,
        Precision::Full | Precision::Half => 1e-2,
    }
}

/// Class names, one per line in output order.
pub(crate) fn read_class_names(path: &Path) -> Result<Vec<String>, ModelError> {
    Ok(std::fs::read_to_string(path)
        .map_err(|source| ModelError::Classes {
            path: path.to_path_buf(),
            source,
        })?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect())
}

impl TorchScriptModel {
    /// Loads `<folder>/model.toml` and what it names, and checks the module
    /// with one forward pass, so a broken model is reported at load time.
    pub fn load(folder: &Path, device: Device) -> Result<Self, ModelError> {
        Self::load_with(folder, device, Precision::Full)
    }

    /// `load`, running the model in `precision`.
    pub fn load_with(
        folder: &Path,
        device: Device,
        precision: Precision,
    ) -> Result<Self, ModelError> {
        if precision == Precision::Half && !device.is_cuda() {
            return Err(ModelError::HalfNeedsCuda(device));
        }
        let description = ModelDescription::read(&folder.join("model.toml"))?;
        let Some(file) = description.torchscript_file().map(str::to_string) else {
            return Err(ModelError::OnlyOnnx {
                path: folder.join(&description.file),
            });
        };
        Self::open(folder, &file, description, device, precision)
    }

    /// The model from the file with its parameters by name (the description's
    /// `parameters`), and those parameters, input side first. They share the
    /// module's storage: changing them changes the network.
    pub fn load_parameterised(
        folder: &Path,
        device: Device,
    ) -> Result<(Self, Vec<(String, Tensor)>), ModelError> {
        let description = ModelDescription::read(&folder.join("model.toml"))?;
        let Some(file) = description.parameters.clone() else {
            return Err(ModelError::NoParameters {
                path: folder.join("model.toml"),
            });
        };
        let model = Self::open(folder, &file, description, device, Precision::Full)?;
        let named = model
            .module
            .named_parameters()
            .map_err(|source| ModelError::Module {
                path: folder.join(&file),
                source,
            })?;
        Ok((model, named))
    }

    fn open(
        folder: &Path,
        file: &str,
        description: ModelDescription,
        device: Device,
        precision: Precision,
    ) -> Result<Self, ModelError> {
        let path = folder.join(file);
        let mut module =
            CModule::load_on_device(&path, device).map_err(|source| ModelError::Module {
                path: path.clone(),
                source,
            })?;
        module.set_eval();
        let class_names = read_class_names(&folder.join(&description.classes))?;
        let mut model = TorchScriptModel {
            module,
            precision,
            exposes_features: false,
            description,
            class_names,
            device,
        };
        model.check(&path)?;
        model.exposes_features = model.check_features();
        Ok(model)
    }

    fn check(&self, path: &Path) -> Result<(), ModelError> {
        let shape = self.input_shape();
        let _guard = tch::no_grad_guard();
        let input = Tensor::zeros(shape.batch(1), (Kind::Float, self.device));
        let output =
            self.run(|| self.module.forward_ts(&[input]))
                .map_err(|e| ModelError::Forward {
                    path: path.to_owned(),
                    shape,
                    message: e.to_string(),
                })?;
        let got = output.size().last().copied().unwrap_or(0);
        if output.dim() != 2 || got as usize != self.class_names.len() {
            return Err(ModelError::ClassCount {
                path: path.to_owned(),
                got,
                expected: self.class_names.len(),
            });
        }
        Ok(())
    }

    /// Whether `features` then `head` reproduce `forward` on a test input.
    fn check_features(&self) -> bool {
        let shape = self.input_shape();
        let _guard = tch::no_grad_guard();
        let input = Tensor::rand(
            [
                1,
                shape.channels as i64,
                shape.height as i64,
                shape.width as i64,
            ],
            (Kind::Float, self.device),
        );
        let Ok(features) = self.run(|| self.module.method_ts("features", &[&input])) else {
            return false;
        };
        let Ok(logits) = self.run(|| self.module.method_ts("head", &[&features])) else {
            return false;
        };
        let Ok(forward) = self.run(|| self.module.forward_ts(&[&input])) else {
            return false;
        };
        let tolerance = same_result_tolerance(self.device, self.precision);
        features.dim() == 4 && logits.allclose(&forward, tolerance, tolerance, false)
    }

    /// Runs a call into the module in this model's precision.
    fn run<T>(&self, call: impl FnOnce() -> T) -> T {
        match self.precision {
            Precision::Full => call(),
            Precision::Half => with_cuda_autocast(call),
        }
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }

    pub fn description(&self) -> &ModelDescription {
        &self.description
    }

    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }
}

impl Classifier for TorchScriptModel {
    fn input_shape(&self) -> InputShape {
        self.description.shape()
    }
    fn num_classes(&self) -> usize {
        self.class_names.len()
    }
    fn training_images(&self) -> usize {
        self.description.training_images
    }
    fn device(&self) -> Device {
        self.device
    }
    fn features(&self, batch: &Tensor) -> Result<Option<Tensor>, TchError> {
        if !self.exposes_features {
            return Ok(None);
        }
        self.run(|| self.module.method_ts("features", &[batch]))
            .map(Some)
    }

    fn head(&self, features: &Tensor) -> Result<Option<Tensor>, TchError> {
        if !self.exposes_features {
            return Ok(None);
        }
        self.run(|| self.module.method_ts("head", &[features]))
            .map(Some)
    }

    fn logits(&self, batch: &Tensor) -> Result<Tensor, TchError> {
        let output = self
            .run(|| self.module.forward_ts(&[batch]))?
            .f_to_kind(Kind::Float)?;
        match self.description.output {
            Output::Logits => Ok(output),
            // log p has the same softmax as the logits it came from.
            Output::Probabilities => output.f_clamp_min(1e-30)?.f_log(),
        }
    }
}
