//! Models as files: each is a folder with the network as TorchScript, as
//! ONNX (`onnx.rs`) or both, its class names and a `model.toml` description
//! (see `description.rs`); `runtime.rs` says which library runs it.

mod autocast;
mod description;
mod loaded;
mod onnx;
mod openmp;
mod runtime;
mod torchscript;

pub use description::{DescriptionError, ModelDescription, Output, Resize};
pub use loaded::{input_for, LoadModelError, LoadedModel, MethodError, Placement, DIGITS};
pub use onnx::{OnnxError, OnnxModel};
pub use runtime::{computed_by, Runtime};
pub use torchscript::{same_result_tolerance, ModelError, Precision, TorchScriptModel};
