//! The Evidence Lens engine: weight of evidence of image windows (PDA, the
//! efficient PDA of the paper, the sampled mean, occlusion) and the gradient
//! baselines over any `Classifier`, with no server, store or wire format.
//!
//! Layers, lowest first: `engine` (the math over tensors), `input` (upload
//! bytes to a model's input), `models` (model folders: TorchScript, class
//! names, samplers), then `methods` (what a person picks, turned into the
//! engine's call) and `digits` (the network the lessons explain). `agreement`
//! and `defaults` are the measurements kept beside a model.

pub mod agreement;
pub mod defaults;
pub mod digits;
pub mod engine;
pub mod input;
pub mod methods;
pub mod models;
