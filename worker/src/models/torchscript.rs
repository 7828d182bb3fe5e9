//! A classifier from a TorchScript file and its description: the models
//! folder's unit. Perturbation passes run under `no_grad` (the engine's
//! guard) with the module in evaluation mode.

use std::path::{Path, PathBuf};

use tch::{CModule, Device, Kind, TchError, Tensor};

use super::description::{DescriptionError, ModelDescription, Output};
use crate::engine::{Classifier, InputShape};

pub struct TorchScriptModel {
    module: CModule,
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
    #[error("{path} failed on a test input of shape {shape:?}: {message}")]
    Forward {
        path: PathBuf,
        shape: InputShape,
        message: String,
    },
}

impl TorchScriptModel {
    /// Loads `<folder>/model.toml` and what it names, and checks the module
    /// with one forward pass, so a broken model is reported at load time.
    pub fn load(folder: &Path, device: Device) -> Result<Self, ModelError> {
        let description = ModelDescription::read(&folder.join("model.toml"))?;
        let path = folder.join(&description.file);
        let mut module =
            CModule::load_on_device(&path, device).map_err(|source| ModelError::Module {
                path: path.clone(),
                source,
            })?;
        module.set_eval();
        let classes_path = folder.join(&description.classes);
        let class_names: Vec<String> = std::fs::read_to_string(&classes_path)
            .map_err(|source| ModelError::Classes {
                path: classes_path,
                source,
            })?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect();
        let mut model = TorchScriptModel {
            module,
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
        let input = Tensor::zeros(
            [
                1,
                shape.channels as i64,
                shape.height as i64,
                shape.width as i64,
            ],
            (Kind::Float, self.device),
        );
        let output = self
            .module
            .forward_ts(&[input])
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
        let Ok(features) = self.module.method_ts("features", &[&input]) else {
            return false;
        };
        let Ok(logits) = self.module.method_ts("head", &[&features]) else {
            return false;
        };
        let Ok(forward) = self.module.forward_ts(&[&input]) else {
            return false;
        };
        features.dim() == 4 && logits.allclose(&forward, 1e-4, 1e-4, false)
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
        self.module.method_ts("features", &[batch]).map(Some)
    }

    fn head(&self, features: &Tensor) -> Result<Option<Tensor>, TchError> {
        if !self.exposes_features {
            return Ok(None);
        }
        self.module.method_ts("head", &[features]).map(Some)
    }

    fn logits(&self, batch: &Tensor) -> Result<Tensor, TchError> {
        let output = self.module.forward_ts(&[batch])?.f_to_kind(Kind::Float)?;
        match self.description.output {
            Output::Logits => Ok(output),
            // log p has the same softmax as the logits it came from.
            Output::Probabilities => output.f_clamp_min(1e-30)?.f_log(),
        }
    }
}
