//! `evidence-lens agreement`: how closely each method's maps follow PDA
//! with many samples (the reference) on one model, over the shipped photos
//! or held-out digits. The result is kept beside the model
//! (`agreement.json`), where the server finds it for the page.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;

use super::{device_from, plain_map, MapSetting, RunOptions};
use crate::agreement::{
    rank_correlation, spearman_brown, top_overlap, MethodAgreement, ModelAgreement, AGREEMENT_FILE,
};
use crate::engine::{default_batch_size, InputImage, Target};
use crate::methods::MethodKind;
use crate::models::{LoadedModel, Placement, Resize};

#[derive(Args, Debug)]
pub struct AgreementArgs {
    /// `digits`, a model folder name under --models, or a path to a model folder.
    #[arg(long, default_value = "efficientnet-lite0")]
    pub model: String,
    /// A folder of images [default: data/photos for photo models; the
    /// held-out digits for the digits model].
    #[arg(long)]
    pub images: Option<PathBuf>,
    /// At most this many images (the first ones, in name order).
    #[arg(long, default_value_t = 10)]
    pub count: usize,
    /// Window side k [default: 4 for digits, 10 for photos].
    #[arg(long)]
    pub window: Option<usize>,
    #[arg(long, default_value_t = 1)]
    pub stride: usize,
    /// Samples of the reference PDA.
    #[arg(long, default_value_t = 32)]
    pub reference_samples: usize,
    /// The PDA sample counts compared with it.
    #[arg(long, value_delimiter = ',', default_value = "2,4,10")]
    pub pda_samples: Vec<usize>,
    /// Samples of the sampled mean.
    #[arg(long, default_value_t = 10)]
    pub mean_samples: usize,
    /// Where the JSON goes [default: agreement.json in the model's folder].
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub run: RunOptions,
}

/// One method as compared: its kind and sample count.
struct Candidate {
    kind: MethodKind,
    samples: usize,
}

pub fn run_agreement(args: &AgreementArgs) -> anyhow::Result<()> {
    let device = device_from(args.run.device)?;
    // As `serve` runs it: ONNX Runtime on a CPU where the model has an ONNX
    // file (the same maps, about three times the passes a second).
    let model = LoadedModel::load_on(&args.model, &args.run.models, Placement::on(device))?;
    let images = named_images(&model, args.images.as_deref(), args.count, &args.run.data)?;
    anyhow::ensure!(!images.is_empty(), "no images to compare on");
    let window = args.window.unwrap_or(model.resize.default_window());
    anyhow::ensure!(
        args.reference_samples >= 2,
        "--reference-samples must be at least 2 (it is split in halves)"
    );
    let half = args.reference_samples / 2;
    let mut candidates = vec![
        Candidate {
            kind: MethodKind::EfficientPda,
            samples: 1,
        },
        Candidate {
            kind: MethodKind::SampledMean,
            samples: args.mean_samples,
        },
        Candidate {
            kind: MethodKind::Gradient,
            samples: 1,
        },
        Candidate {
            kind: MethodKind::Occlusion,
            samples: 1,
        },
    ];
    candidates.extend(args.pda_samples.iter().map(|&samples| Candidate {
        kind: MethodKind::Pda,
        samples,
    }));
    let batch_size = args.run.batch_size.unwrap_or(default_batch_size(device));
    let map = |kind, samples, seed, image: &InputImage| -> anyhow::Result<(Vec<f32>, f64)> {
        let setting = MapSetting {
            window,
            stride: args.stride,
            samples,
            batch_size,
            seed,
            target: Target::Predicted,
        };
        let began = Instant::now();
        let explanation = plain_map(&model, kind, &setting, image)?;
        Ok((explanation.map().to_vec(), began.elapsed().as_secs_f64()))
    };

    let mut scores = vec![(Vec::new(), Vec::new(), Vec::new()); candidates.len()];
    let mut halves = Vec::new();
    for (name, image) in &images {
        eprintln!(
            "{name}: the reference (PDA, S = {})",
            args.reference_samples
        );
        let (reference, _) = map(
            MethodKind::Pda,
            args.reference_samples,
            args.run.seed,
            image,
        )?;
        // Two halves with seeds of their own: independent of each other.
        let (a, _) = map(MethodKind::Pda, half, args.run.seed + 1, image)?;
        let (b, _) = map(MethodKind::Pda, half, args.run.seed + 2, image)?;
        halves.push(rank_correlation(&a, &b));
        for (candidate, score) in candidates.iter().zip(&mut scores) {
            // Another seed than the reference's, so PDA is not compared
            // with its own draws.
            let (m, seconds) = map(candidate.kind, candidate.samples, args.run.seed + 3, image)?;
            score.0.push(rank_correlation(&m, &reference));
            score.1.push(top_overlap(&m, &reference, 0.1));
            score.2.push(seconds);
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let split_half = mean(&halves);
    let methods = candidates
        .iter()
        .zip(&scores)
        .map(|(c, (rank, top, seconds))| MethodAgreement {
            method: c.kind.name().to_string(),
            samples: matches!(c.kind, MethodKind::Pda | MethodKind::SampledMean)
                .then_some(c.samples),
            rank_correlation: mean(rank),
            top_overlap: mean(top),
            seconds: mean(seconds),
        })
        .collect();
    let agreement = ModelAgreement {
        reference: format!("PDA, S = {}", args.reference_samples),
        reference_samples: args.reference_samples,
        images: images.iter().map(|(name, _)| name.clone()).collect(),
        window,
        stride: args.stride,
        split_half,
        ceiling: spearman_brown(split_half),
        methods,
        device: format!("{device:?}"),
        measured_unix: crate::store::now_unix(),
    };
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| model.folder.join(AGREEMENT_FILE));
    std::fs::write(&out, serde_json::to_string_pretty(&agreement)? + "\n")?;
    print_table(&agreement);
    eprintln!("written to {}", out.display());
    Ok(())
}

/// The images compared on, with their names: those of `folder`, or else
/// the held-out digits for the digits model and the shipped photos for
/// photo models; at most `count`.
pub fn named_images(
    model: &LoadedModel,
    folder: Option<&Path>,
    count: usize,
    data: &Path,
) -> anyhow::Result<Vec<(String, InputImage)>> {
    if folder.is_none() && model.resize == Resize::MnistDigit {
        let split = crate::digits::mnist::load_split(&data.join(crate::digits::MNIST_FILE))?;
        let held_out = split.held_out;
        return Ok(digits_of_every_label(&held_out.labels, count)
            .into_iter()
            .map(|i| {
                let image = InputImage {
                    shape: model.classifier.input_shape(),
                    values: held_out.image(i).to_vec(),
                };
                let name = format!("held-out digit {i} (a {})", held_out.labels[i]);
                (name, image)
            })
            .collect());
    }
    let folder = folder.unwrap_or(Path::new("data/photos"));
    let mut images = Vec::new();
    for path in crate::input::image_files(folder)?.into_iter().take(count) {
        let image = model.input_from_bytes(&std::fs::read(&path)?)?;
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        images.push((name, image));
    }
    Ok(images)
}

/// Indices of `count` digits taken label by label (the first 0, the first
/// 1, ..., then the second of each), so that a few digits cover every
/// label whatever order the set is in.
fn digits_of_every_label(labels: &[u8], count: usize) -> Vec<usize> {
    let mut by_label: Vec<std::collections::VecDeque<usize>> = vec![Default::default(); 256];
    for (i, &label) in labels.iter().enumerate() {
        by_label[label as usize].push_back(i);
    }
    let mut chosen = Vec::new();
    while chosen.len() < count.min(labels.len()) {
        for queue in by_label.iter_mut() {
            if let Some(i) = queue.pop_front() {
                if chosen.len() < count {
                    chosen.push(i);
                }
            }
        }
    }
    chosen
}

/// A Markdown table on stdout.
fn print_table(agreement: &ModelAgreement) {
    println!(
        "Agreement with {} over {} images (k = {}, stride {}); split-half {:.3}, ceiling {:.3}\n",
        agreement.reference,
        agreement.images.len(),
        agreement.window,
        agreement.stride,
        agreement.split_half,
        agreement.ceiling
    );
    println!("| method | rank correlation | top-10% overlap | seconds per image |");
    println!("|---|---|---|---|");
    for m in &agreement.methods {
        let name = match m.samples {
            Some(s) => format!("{} (S = {s})", m.method),
            None => m.method.clone(),
        };
        println!(
            "| {name} | {:.3} | {:.3} | {:.2} |",
            m.rank_correlation, m.top_overlap, m.seconds
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_are_taken_label_by_label() {
        let labels = [0, 0, 0, 1, 1, 2];
        assert_eq!(digits_of_every_label(&labels, 4), vec![0, 3, 5, 1]);
        assert_eq!(digits_of_every_label(&labels, 10), vec![0, 3, 5, 1, 4, 2]);
    }
}
