//! `evidence-lens estimators`: few-pass estimators of PDA with the
//! conditional sampler (`engine::few_pass`) measured against PDA with many
//! samples, as `agreement` measures the methods: per design and number of
//! passes per window, the rank correlation and top-10% overlap with the
//! reference over the shipped photos, and the time per image.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use serde::{Deserialize, Serialize};

use lens_engine::agreement::{rank_correlation, spearman_brown, top_overlap};
use lens_engine::engine::{
    default_batch_size, explain, ConditionalMean, Design, DesignedPda, InputImage, Quantity,
    Target, WindowFill,
};
use lens_engine::methods;
use lens_engine::models::{LoadedModel, Precision};
use lens_worker::cli::named_images;
use lens_worker::cli::{device_from, plain_params, write_report, MapSetting, RunOptions};

#[derive(Args, Debug)]
pub struct EstimatorsArgs {
    /// A model with patch statistics (the conditional sampler): a folder
    /// name under --models, or a path to a model folder.
    #[arg(long, default_value = "efficientnet-lite0")]
    pub model: String,
    /// A folder of images [default: data/photos].
    #[arg(long)]
    pub images: Option<PathBuf>,
    /// At most this many images (the first ones, in name order).
    #[arg(long, default_value_t = 3)]
    pub count: usize,
    /// Window side k [default: 10 for photos].
    #[arg(long)]
    pub window: Option<usize>,
    #[arg(long, default_value_t = 10)]
    pub stride: usize,
    /// Budgets in passes per window; a design that cannot use a budget
    /// runs with one pass more (pairs need an even count, sigma pairs an odd one).
    #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
    pub passes: Vec<usize>,
    /// Samples of the reference PDA (split in halves for its ceiling).
    #[arg(long, default_value_t = 32)]
    pub reference_samples: usize,
    /// Where the JSON report goes (the table goes to stdout either way).
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub run: RunOptions,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct EstimatorReport {
    pub model: String,
    pub reference: String,
    pub images: Vec<String>,
    pub window: usize,
    pub stride: usize,
    /// Rank correlation of two independent halves of the reference.
    pub split_half: f64,
    /// The reference's own reliability (Spearman-Brown of the split half):
    /// no estimator can agree with it better than this.
    pub ceiling: f64,
    pub estimators: Vec<EstimatorAgreement>,
    pub device: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct EstimatorAgreement {
    pub estimator: String,
    pub passes: usize,
    pub rank_correlation: f64,
    pub top_overlap: f64,
    pub seconds: f64,
}

/// One estimator as compared: a design of draws, or the conditional mean.
enum Candidate {
    Mean,
    Draws(Design, usize),
}

impl Candidate {
    fn name(&self) -> String {
        match self {
            Candidate::Mean => "conditional mean (efficient PDA)".into(),
            Candidate::Draws(design, _) => design.name().into(),
        }
    }
    fn passes(&self) -> usize {
        match self {
            Candidate::Mean => 1,
            Candidate::Draws(_, samples) => *samples,
        }
    }
}

/// Every design at every budget it can use (or one pass more), and the
/// conditional mean; in order of passes.
fn candidates(budgets: &[usize]) -> Vec<Candidate> {
    let mut chosen = vec![Candidate::Mean];
    for &budget in budgets {
        for design in Design::ALL {
            let Some(samples) = [budget, budget + 1].into_iter().find(|&s| design.fits(s)) else {
                continue;
            };
            let already = chosen
                .iter()
                .any(|c| matches!(c, Candidate::Draws(d, s) if *d == design && *s == samples));
            if !already {
                chosen.push(Candidate::Draws(design, samples));
            }
        }
    }
    // By passes, then in the order of `Design::ALL` (the mean first).
    let design_order = |c: &Candidate| match c {
        Candidate::Mean => 0,
        Candidate::Draws(d, _) => 1 + Design::ALL.iter().position(|x| x == d).unwrap_or(0),
    };
    chosen.sort_by_key(|c| (c.passes(), design_order(c)));
    chosen
}

pub fn run_estimators(args: &EstimatorsArgs) -> anyhow::Result<()> {
    let device = device_from(args.run.device)?;
    let model = LoadedModel::load(&args.model, &args.run.models, device, Precision::Full)?;
    let images = named_images(&model, args.images.as_deref(), args.count, &args.run.data)?;
    anyhow::ensure!(!images.is_empty(), "no images to compare on");
    anyhow::ensure!(
        args.reference_samples >= 2,
        "--reference-samples must be at least 2 (it is split in halves)"
    );
    let window = args.window.unwrap_or(model.resize.default_window());
    let gaussian = model.conditional(window, methods::DEFAULT_PADDING)?;
    let batch_size = args.run.batch_size.unwrap_or(default_batch_size(device));
    let map =
        |fill: &dyn WindowFill, seed: u64, image: &InputImage| -> anyhow::Result<(Vec<f32>, f64)> {
            let setting = MapSetting {
                window,
                stride: args.stride,
                samples: fill.samples_per_window(),
                batch_size,
                seed,
                target: Target::Predicted,
            };
            let params = plain_params(&setting, Quantity::LogOdds);
            let began = Instant::now();
            let explanation =
                explain(model.classifier.as_ref(), image, fill, &params, &mut |_| {
                    std::ops::ControlFlow::Continue(())
                })?;
            Ok((explanation.map().to_vec(), began.elapsed().as_secs_f64()))
        };
    let pda = |samples| DesignedPda::new(gaussian.clone(), samples, Design::Independent);
    let candidates = candidates(&args.passes);
    let fills: Vec<Box<dyn WindowFill>> = candidates
        .iter()
        .map(|c| -> anyhow::Result<Box<dyn WindowFill>> {
            Ok(match c {
                Candidate::Mean => Box::new(ConditionalMean {
                    gaussian: gaussian.clone(),
                }),
                Candidate::Draws(design, samples) => {
                    Box::new(DesignedPda::new(gaussian.clone(), *samples, *design)?)
                }
            })
        })
        .collect::<anyhow::Result<_>>()?;

    let mut scores = vec![(Vec::new(), Vec::new(), Vec::new()); candidates.len()];
    let mut halves = Vec::new();
    for (name, image) in &images {
        eprintln!(
            "{name}: the reference (PDA, S = {})",
            args.reference_samples
        );
        let (reference, _) = map(&pda(args.reference_samples)?, args.run.seed, image)?;
        let half = args.reference_samples / 2;
        let (a, _) = map(&pda(half)?, args.run.seed + 1, image)?;
        let (b, _) = map(&pda(half)?, args.run.seed + 2, image)?;
        halves.push(rank_correlation(&a, &b));
        for (fill, score) in fills.iter().zip(&mut scores) {
            let (m, seconds) = map(fill.as_ref(), args.run.seed + 3, image)?;
            score.0.push(rank_correlation(&m, &reference));
            score.1.push(top_overlap(&m, &reference, 0.1));
            score.2.push(seconds);
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let split_half = mean(&halves);
    let report = EstimatorReport {
        model: model.name.clone(),
        reference: format!("PDA, S = {}", args.reference_samples),
        images: images.iter().map(|(name, _)| name.clone()).collect(),
        window,
        stride: args.stride,
        split_half,
        ceiling: spearman_brown(split_half),
        estimators: candidates
            .iter()
            .zip(&scores)
            .map(|(c, (rank, top, seconds))| EstimatorAgreement {
                estimator: c.name(),
                passes: c.passes(),
                rank_correlation: mean(rank),
                top_overlap: mean(top),
                seconds: mean(seconds),
            })
            .collect(),
        device: format!("{device:?}"),
    };
    print_table(&report);
    write_report(args.out.as_deref(), &report)
}

fn print_table(report: &EstimatorReport) {
    println!(
        "Few-pass estimators against {} on {} over {} images (k = {}, stride {}); split-half {:.3}, ceiling {:.3}\n",
        report.reference,
        report.model,
        report.images.len(),
        report.window,
        report.stride,
        report.split_half,
        report.ceiling
    );
    println!("| estimator | passes per window | rank correlation | top-10% overlap | seconds per image |");
    println!("|---|---|---|---|---|");
    for e in &report.estimators {
        println!(
            "| {} | {} | {:.3} | {:.3} | {:.2} |",
            e.estimator, e.passes, e.rank_correlation, e.top_overlap, e.seconds
        );
    }
}
