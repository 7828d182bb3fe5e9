//! The `evidence-lens-lab` binary: the experiments (docs/experiments), apart
//! from the product's own binary so that it carries neither plotters nor
//! the research code.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    version,
    about = "Evidence Lens experiments: sanity checks, estimators, held-out statistics, the paper's figures, the measured defaults"
)]
struct Lab {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Sanity checks (Adebayo et al.): how each method's maps change when
    /// the model's layers are randomised from the top down, and for the
    /// digits when the network learns shuffled labels.
    Sanity(lens_lab::SanityArgs),
    /// Few-pass estimators of PDA (antithetic pairs, Latin hypercube,
    /// orthogonal pairs, sigma pairs) against PDA with many samples.
    Estimators(lens_lab::EstimatorsArgs),
    /// How the maps change when the conditional sampler is fitted on every
    /// other photo instead of a set that includes the explained one.
    HeldOutStatistics(lens_lab::HeldOutArgs),
    /// The paper's experiments as figures (PNG, SVG and their data) under
    /// docs/experiments/figures.
    Figures(lens_lab::FiguresArgs),
    /// Measures every method, window and stride a default could be on this
    /// device (time, deletion and insertion, agreement with PDA) and keeps
    /// the table and the chosen default beside the model (defaults.json).
    Defaults(lens_lab::DefaultsArgs),
    /// Budgeted maps (adaptive refinement) against the full map, beside a
    /// plain coarser stride of the same cost (docs/experiments/adaptive.md).
    Adaptive(lens_lab::AdaptiveArgs),
}

fn main() {
    let outcome = match Lab::parse().command {
        Command::Sanity(args) => lens_lab::run_sanity(&args),
        Command::Estimators(args) => lens_lab::run_estimators(&args),
        Command::HeldOutStatistics(args) => lens_lab::run_held_out(&args),
        Command::Figures(args) => lens_lab::run_figures(&args),
        Command::Defaults(args) => lens_lab::run_defaults(&args),
        Command::Adaptive(args) => lens_lab::run_adaptive(&args),
    };
    if let Err(error) = outcome {
        // One line, whatever the cause: `{:#}` joins the context chain.
        eprintln!("error: {error:#}");
        std::process::exit(2);
    }
}
