//! Evidence Lens worker: the engine that explains classifier decisions with
//! Prediction Difference Analysis, the digits network it explains, and the
//! server that streams the evidence to the page.
//!
//! Data flows one way: image + request in (`server`), converted to the model's
//! input (`input`), explained window by window (`engine`), tiles out.

pub mod agreement;
pub mod cli;
pub mod cluster;
pub mod defaults;
pub mod digits;
pub mod engine;
pub mod input;
pub mod methods;
pub mod models;
pub mod sanity;
pub mod server;
pub mod store;
