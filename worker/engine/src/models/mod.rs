//! Models as files: each is a folder with a TorchScript module, its class
//! names and a `model.toml` description (see `description.rs`).

mod autocast;
mod description;
mod loaded;
mod torchscript;

pub use description::{DescriptionError, ModelDescription, Output, Resize};
pub use loaded::{input_for, LoadModelError, LoadedModel, MethodError, DIGITS};
pub use torchscript::{same_result_tolerance, ModelError, Precision, TorchScriptModel};
