//! The explanation engine: window methods over any [`Classifier`], with no
//! knowledge of gRPC, files or the page.
//!
//! - `windows`: where windows sit, per-pixel coverage, the tile schedule.
//! - `evidence`: Laplace-corrected log2 odds and the weight of evidence.
//! - `sampler`: what a window may be replaced by (the marginal sampler).
//! - `fill`: one small unit per method (PDA, efficient PDA).
//! - `explain`: the single perturb / batch / forward / accumulate loop.

mod classifier;
mod error;
mod evidence;
mod explain;
mod fill;
mod sampler;
mod windows;

pub use classifier::{Classifier, InputImage, InputShape};
pub use error::EngineError;
pub use evidence::Laplace;
pub use explain::{
    explain, ExplainParams, Explanation, MapTile, Progress, Target, MAX_BATCH, MAX_SAMPLES,
};
pub use fill::{EfficientPda, Pda, WindowFill};
pub use sampler::MarginalSampler;
pub use windows::{coverage, positions, windows, Rect, TileSchedule, Window};
