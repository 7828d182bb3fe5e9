//! `evidence-lens held-out-statistics`: how much the maps depend on the
//! photo being one of those the conditional sampler was fitted on. Per
//! explained photo: the maps with the model's patch statistics (fitted on
//! the page's photos, this one included) against the maps with statistics
//! pooled from every photo of both folders except this one; beside them,
//! PDA against itself with other draws, the change sampling alone makes.

use std::path::PathBuf;

use clap::Args;
use serde::{Deserialize, Serialize};

use lens_engine::agreement::{rank_correlation, top_overlap};
use lens_engine::engine::{default_batch_size, InputImage, PatchStatistics, Target};
use lens_engine::methods::MethodKind;
use lens_engine::models::{LoadedModel, Precision};
use lens_worker::cli::named_images;
use lens_worker::cli::{device_from, plain_map, write_report, MapSetting, RunOptions};

#[derive(Args, Debug)]
pub struct HeldOutArgs {
    /// A model with patch statistics: a folder name under --models, or a path.
    #[arg(long, default_value = "efficientnet-lite0")]
    pub model: String,
    /// The photos explained (and fitted on, except the one explained).
    #[arg(long, default_value = "data/photos")]
    pub photos: PathBuf,
    /// More photos fitted on, never explained.
    #[arg(long, default_value = "data/fitting-photos")]
    pub fitting_photos: PathBuf,
    /// Explain at most this many photos (the first ones, in name order).
    #[arg(long, default_value_t = 7)]
    pub count: usize,
    /// Distance between fitted patches.
    #[arg(long, default_value_t = 1)]
    pub fit_stride: usize,
    #[arg(long, default_value_t = 10)]
    pub stride: usize,
    /// Samples S of PDA.
    #[arg(long, default_value_t = 4)]
    pub samples: usize,
    /// Where the JSON report goes (the table goes to stdout either way).
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub run: RunOptions,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct HeldOutReport {
    pub model: String,
    /// Every photo fitted on (the explained one left out each time).
    pub fitted_on: Vec<String>,
    pub photos: Vec<HeldOutPhoto>,
    pub stride: usize,
    pub samples: usize,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct HeldOutPhoto {
    pub photo: String,
    /// Efficient PDA, the model's statistics against the held-out fit.
    pub efficient_rank_correlation: f64,
    pub efficient_top_overlap: f64,
    /// PDA, the same.
    pub pda_rank_correlation: f64,
    pub pda_top_overlap: f64,
    /// PDA with the model's statistics against itself with other draws.
    pub pda_redrawn_rank_correlation: f64,
}

pub fn run_held_out(args: &HeldOutArgs) -> anyhow::Result<()> {
    let device = device_from(args.run.device)?;
    let mut model = LoadedModel::load(&args.model, &args.run.models, device, Precision::Full)?;
    // The statistics of the default window (the patch side the page uses).
    let side = model.resize.default_window() + 2 * lens_engine::methods::DEFAULT_PADDING;
    let Some(shipped) = model.statistics.iter().find(|s| s.side == side).cloned() else {
        anyhow::bail!(
            "{} has no {side} x {side} patch statistics to compare with",
            model.name
        );
    };
    let explained = named_images(&model, Some(&args.photos), usize::MAX, &args.run.data)?;
    let others = named_images(
        &model,
        Some(&args.fitting_photos),
        usize::MAX,
        &args.run.data,
    )?;
    let all: Vec<&(String, InputImage)> = explained.iter().chain(&others).collect();
    eprintln!(
        "fitting {} x {} patches of {} photos one by one",
        shipped.side,
        shipped.side,
        all.len()
    );
    let fits = all
        .iter()
        .map(|(_, image)| {
            PatchStatistics::fit(std::slice::from_ref(image), shipped.side, args.fit_stride)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let window = model.resize.default_window();
    let setting = |samples, seed| MapSetting {
        window,
        stride: args.stride,
        samples,
        batch_size: args.run.batch_size.unwrap_or(default_batch_size(device)),
        seed,
        target: Target::Predicted,
    };
    let maps =
        |model: &LoadedModel, image: &InputImage, seed| -> anyhow::Result<(Vec<f32>, Vec<f32>)> {
            let efficient = plain_map(model, MethodKind::EfficientPda, &setting(1, seed), image)?;
            let pda = plain_map(model, MethodKind::Pda, &setting(args.samples, seed), image)?;
            Ok((efficient.map().to_vec(), pda.map().to_vec()))
        };

    let mut photos = Vec::new();
    for (index, (name, image)) in explained.iter().enumerate().take(args.count) {
        eprintln!("{name}");
        model.set_statistics(shipped.clone());
        let (efficient, pda) = maps(&model, image, args.run.seed)?;
        let (_, redrawn) = maps(&model, image, args.run.seed + 1)?;
        let rest: Vec<&PatchStatistics> = fits
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != index)
            .map(|(_, fit)| fit)
            .collect();
        model.set_statistics(PatchStatistics::pooled(&rest)?);
        let (held_efficient, held_pda) = maps(&model, image, args.run.seed)?;
        photos.push(HeldOutPhoto {
            photo: name.clone(),
            efficient_rank_correlation: rank_correlation(&efficient, &held_efficient),
            efficient_top_overlap: top_overlap(&efficient, &held_efficient, 0.1),
            pda_rank_correlation: rank_correlation(&pda, &held_pda),
            pda_top_overlap: top_overlap(&pda, &held_pda, 0.1),
            pda_redrawn_rank_correlation: rank_correlation(&pda, &redrawn),
        });
    }
    let report = HeldOutReport {
        model: model.name.clone(),
        fitted_on: all.iter().map(|(name, _)| name.clone()).collect(),
        photos,
        stride: args.stride,
        samples: args.samples,
    };
    print_table(&report);
    write_report(args.out.as_deref(), &report)
}

fn print_table(report: &HeldOutReport) {
    println!(
        "{}: maps with the shipped patch statistics against statistics fitted on the other {} photos (stride {}, PDA S = {})\n",
        report.model,
        report.fitted_on.len() - 1,
        report.stride,
        report.samples
    );
    println!("| photo | efficient PDA: rank correlation | top-10% overlap | PDA: rank correlation | top-10% overlap | PDA redrawn: rank correlation |");
    println!("|---|---|---|---|---|---|");
    for p in &report.photos {
        println!(
            "| {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} |",
            p.photo,
            p.efficient_rank_correlation,
            p.efficient_top_overlap,
            p.pda_rank_correlation,
            p.pda_top_overlap,
            p.pda_redrawn_rank_correlation
        );
    }
}
