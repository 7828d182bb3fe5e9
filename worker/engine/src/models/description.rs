//! The description file that sits beside every model in the models folder
//! (`<name>/model.toml`): which files hold the network, what it takes and
//! what it gives.

use std::path::Path;

use serde::Deserialize;

use crate::engine::InputShape;

/// How the worker turns an upload into the model's input size.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Resize {
    /// Shorter side to 256/224 of the input side, then a centre crop
    /// (ImageNet evaluation).
    ImagenetCrop,
    /// MNIST style: grey, light ink on dark, centred in a 28 x 28 frame.
    MnistDigit,
}

impl Resize {
    /// The window side a model of this kind is explained with by default.
    pub fn default_window(self) -> usize {
        match self {
            Resize::MnistDigit => 4,
            Resize::ImagenetCrop => 10,
        }
    }
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Output {
    Logits,
    Probabilities,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelDescription {
    /// Shown in the page.
    pub name: String,
    /// The network, relative to the description: a TorchScript file, or an
    /// ONNX file (a name ending in `.onnx`) for a model with no TorchScript.
    pub file: String,
    /// Class names, one per line in output order, relative to the description.
    pub classes: String,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    /// "inside" when the module normalises its [0, 1] input itself.
    pub normalise: String,
    pub output: Output,
    /// Size of the training set, for the Laplace correction.
    pub training_images: usize,
    pub resize: Resize,
    /// Patch statistics for the conditional sampler (`fit-patches`), one
    /// file per patch side (the side l is stored in each), relative to the
    /// description: a file name or a list of them.
    #[serde(default, deserialize_with = "one_or_many")]
    pub statistics: Vec<String>,
    /// Training images for the marginal sampler: a safetensors file whose
    /// tensor `images` is N x C x H x W in [0, 1], relative to the description.
    #[serde(default)]
    pub marginal: Option<String>,
    /// The same network as a TorchScript file that keeps its parameters by
    /// name (traced, not frozen), for the sanity checks that re-draw them.
    #[serde(default)]
    pub parameters: Option<String>,
    /// The same network as an ONNX file beside the TorchScript one (window
    /// methods run it on ONNX Runtime), relative to the description.
    #[serde(default)]
    pub onnx: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum DescriptionError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

impl ModelDescription {
    pub fn read(path: &Path) -> Result<Self, DescriptionError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| DescriptionError::Io {
            path: shown.clone(),
            source,
        })?;
        let description: ModelDescription =
            toml::from_str(&text).map_err(|e| DescriptionError::Invalid {
                path: shown.clone(),
                message: e.to_string(),
            })?;
        if description.normalise != "inside" {
            return Err(DescriptionError::Invalid {
                path: shown,
                message: format!(
                    "normalise = {:?}: only \"inside\" (the module normalises [0, 1] input) is supported",
                    description.normalise
                ),
            });
        }
        if description.channels == 0 || description.height == 0 || description.width == 0 {
            return Err(DescriptionError::Invalid {
                path: shown,
                message: "channels, height and width must be at least 1".into(),
            });
        }
        Ok(description)
    }

    /// The TorchScript file, if the model has one.
    pub fn torchscript_file(&self) -> Option<&str> {
        (!is_onnx(&self.file)).then_some(self.file.as_str())
    }

    /// The ONNX file: `file` itself when it is one, else `onnx`.
    pub fn onnx_file(&self) -> Option<&str> {
        if is_onnx(&self.file) {
            Some(&self.file)
        } else {
            self.onnx.as_deref()
        }
    }

    pub fn shape(&self) -> InputShape {
        InputShape {
            channels: self.channels,
            height: self.height,
            width: self.width,
        }
    }
}

fn is_onnx(file: &str) -> bool {
    file.to_ascii_lowercase().ends_with(".onnx")
}

/// A file name or a list of them.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(file) => vec![file],
        OneOrMany::Many(files) => files,
    })
}
