//! Models as files: each is a folder with a TorchScript module (and, where
//! exported, the same network as ONNX, `onnx.rs`), its class names and a
//! `model.toml` description (see `description.rs`).

mod autocast;
mod description;
mod loaded;
mod onnx;
mod torchscript;

pub use description::{DescriptionError, ModelDescription, Output, Resize};
pub use loaded::{input_for, LoadModelError, LoadedModel, MethodError, DIGITS};
pub use onnx::{OnnxError, OnnxModel};
pub use torchscript::{same_result_tolerance, ModelError, Precision, TorchScriptModel};
