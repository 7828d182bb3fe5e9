//! The research commands of `evidence-lens-lab`: the experiments under
//! docs/experiments. Each runs the engine in batch mode over the shipped
//! models and data and writes a JSON report (and for `figures`, PNG and SVG
//! figures with their data). `defaults` measures the settings a model's
//! page starts with; its result is committed under docs/experiments and
//! copied beside the model at setup.

mod adaptive;
mod cascade;
mod estimators;
mod figures;
mod held_out;
mod hierarchical;
mod hindsight;
mod interpolated;
mod measure_defaults;
mod memo;
mod sanity;

pub use adaptive::{run_adaptive, table, AdaptiveArgs, AdaptiveReport, AdaptiveRow};
pub use estimators::{run_estimators, EstimatorAgreement, EstimatorReport, EstimatorsArgs};
pub use figures::{run_figures, FiguresArgs};
pub use held_out::{run_held_out, HeldOutArgs, HeldOutPhoto, HeldOutReport};
pub use measure_defaults::{run_defaults, DefaultsArgs};
pub use sanity::{run_sanity, Comparison, SanityArgs, SanityReport, Similarity};
