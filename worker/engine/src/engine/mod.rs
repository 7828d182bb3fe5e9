//! The explanation engine: window methods over any [`Classifier`], with no
//! knowledge of gRPC, files or the page.
//!
//! - `windows`: where windows sit, per-pixel coverage, the tile schedule.
//! - `evidence`: Laplace-corrected log2 odds and the weight of evidence.
//! - `perturb`: the input on the model's device and batches built there.
//! - `draws`: random draws keyed by (seed, window position, sample).
//! - `grid`: one evidence value per window position, per-pixel means on the device.
//! - `sampler`: what a window may be replaced by (the marginal sampler).
//! - `gaussian`: the conditional Gaussian sampler (per window and in bulk).
//! - `fill`: one small unit per window method (PDA, efficient PDA, sampled
//!   mean, occlusion), filling a whole batch of windows at once.
//! - `gradient`: Algorithm 3, one forward and one backward pass.
//! - `saliency`: the |dP/dx| baseline; `gradcam`: Grad-CAM.
//! - `deletion`: deletion and insertion curves (faithfulness of a map).
//! - `explain`: the single perturb / batch / forward / accumulate loop.
//! - `refine`: a budget of windows spent where the map needs them, the
//!   rest estimated from their neighbours.

mod classifier;
mod deletion;
mod device;
mod draws;
mod error;
mod evidence;
mod explain;
mod few_pass;
mod fill;
mod gaussian;
mod gradcam;
mod gradient;
mod grid;
mod inspect;
mod perturb;
mod progress;
mod refine;
mod saliency;
mod sampler;
mod window_run;
mod windows;

pub use classifier::{Classifier, InputImage, InputShape};
pub use deletion::{
    area, deletion_insertion, map_curves, ranks, Curves, DeletionParams, Faithfulness, Removal,
};
pub use device::{default_batch_size, random_batch};
pub use draws::{standard_normal, window_stream};
pub use error::EngineError;
pub use evidence::{Laplace, Quantity};
pub use explain::{
    explain, probabilities_of, ExplainParams, Explanation, MapClasses, Takeover, Target, MAX_BATCH,
    MAX_SAMPLES,
};
pub use few_pass::{Design, DesignedPda, SIGMA_SCALE};
pub use fill::{EfficientPda, Occlusion, Pda, SampledMean, WindowFill};
pub use gaussian::{ConditionalGaussian, ConditionalMean, ConditionalPda, PatchStatistics};
pub use gradcam::gradcam_explain;
pub use gradient::gradient_explain;
pub use grid::EvidenceGrid;
pub use inspect::{inspect_window, WindowInspection};
pub use perturb::DeviceInput;
pub use progress::{MapTile, Progress, WindowResults};
pub use refine::{bracket, lattice, Refinement};
pub use saliency::saliency_explain;
pub use sampler::{read_window, write_window, MarginalSampler};
pub use windows::{
    coarse_positions, coverage, positions, tile_rects, windows, Rect, Schedule, TileSchedule,
    Window,
};
