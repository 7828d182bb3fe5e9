//! `evidence-lens defaults`: measures every (method, window, stride,
//! budget) a default could be on this device over the shipped photos or
//! held-out digits (the time as the page's run takes it, the deletion and
//! insertion areas with blur and grey, the agreement with PDA at the same
//! window) and keeps the table beside
//! the model (`defaults.json`), where the worker finds its default. Prints
//! the table as Markdown and draws the previous and the new default's maps
//! side by side.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Instant;

use clap::Args;

use crate::figures::grid::{titled, Row};
use lens_engine::agreement::rank_correlation;
use lens_engine::defaults::{DeviceDefaults, MeasuredSetting, ModelDefaults, DEFAULTS_FILE};
use lens_engine::engine::{
    default_batch_size, map_curves, positions, probabilities_of, DeletionParams, InputImage,
    Refinement, Removal, Target,
};
use lens_engine::methods::MethodKind;
use lens_engine::models::{LoadedModel, Placement, Runtime};
use lens_worker::cli::{device_from, named_images, overlay, page_map, MapSetting, RunOptions};

#[derive(Args, Debug)]
pub struct DefaultsArgs {
    /// `digits`, a model folder name under --models, or a path to a model folder.
    #[arg(long, default_value = "efficientnet-lite0")]
    pub model: String,
    /// At most this many images (the shipped photos, or held-out digits).
    #[arg(long, default_value_t = 10)]
    pub count: usize,
    /// Window sides [default: those the conditional sampler has statistics
    /// for; 2, 4, 6, 8 for a model with the marginal sampler].
    #[arg(long, value_delimiter = ',')]
    pub windows: Vec<usize>,
    /// Strides measured at every window [default: about a half, a third, a
    /// quarter, a sixth and an eighth of the window, and 1].
    #[arg(long, value_delimiter = ',')]
    pub strides: Vec<usize>,
    /// The reference PDA's stride [default: the finest stride measured at
    /// each window with every window computed, within the time].
    #[arg(long)]
    pub reference_stride: Option<usize>,
    /// A default finishes within this many seconds per image here.
    #[arg(long, default_value_t = 15.0)]
    pub budget: f64,
    /// Samples of the reference PDA (at the finest stride measured at each window).
    #[arg(long, default_value_t = 8)]
    pub reference_samples: usize,
    /// The shares of the windows computed (below 1: the rest estimated from
    /// their neighbours, `explain --budget`). A share that computes no more
    /// windows than a larger one is left out.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    pub budgets: Vec<f64>,
    /// The PDA sample counts measured.
    #[arg(long, value_delimiter = ',', default_value = "2,4,10")]
    pub pda_samples: Vec<usize>,
    /// Samples of the sampled mean.
    #[arg(long, default_value_t = 10)]
    pub mean_samples: usize,
    /// The default before this measurement, `method,window,stride` (and
    /// `,samples` for PDA and the sampled mean).
    #[arg(long, value_delimiter = ',')]
    pub previous: Vec<String>,
    /// The share of the windows the previous default computed.
    #[arg(long, default_value_t = 1.0)]
    pub previous_budget: f64,
    /// The machine, for people ("2 CPU cores").
    #[arg(long)]
    pub machine: String,
    /// What runs the window methods, as `serve --runtime` [default: the
    /// serving default, ONNX Runtime on a CPU where the model has an ONNX
    /// file, libtorch on CUDA].
    #[arg(long, value_enum)]
    pub runtime: Option<Runtime>,
    /// The JSON the measurement goes into (this device's part replaced)
    /// [default: defaults.json in the model's folder].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The figure of the previous and the new default's maps.
    #[arg(long)]
    pub figure: Option<PathBuf>,
    /// The TrueType font of the figure's labels.
    #[arg(long, default_value = "data/DejaVuSans.ttf")]
    pub font: PathBuf,
    #[command(flatten)]
    pub run: RunOptions,
}

/// A setting a default could be.
#[derive(Clone, Debug)]
struct Candidate {
    kind: MethodKind,
    samples: usize,
    window: usize,
    stride: usize,
    /// The share of the windows computed.
    budget: f64,
}

impl Candidate {
    /// The windows computed on an image of this size (a budget of 1: all).
    fn windows(&self, height: usize, width: usize) -> usize {
        let rows = positions(height, self.window, self.stride).len();
        let columns = positions(width, self.window, self.stride).len();
        Refinement::new(rows, columns, self.window, self.stride, self.budget).target()
    }

    /// Forward passes per image of this size (one more for the image itself).
    fn passes(&self, height: usize, width: usize) -> usize {
        let windows = self.windows(height, width);
        let per_window = if self.kind == MethodKind::Pda {
            self.samples
        } else {
            1
        };
        windows * per_window + 1
    }

    fn samples_shown(&self) -> Option<usize> {
        matches!(self.kind, MethodKind::Pda | MethodKind::SampledMean).then_some(self.samples)
    }
}

/// Strides to measure at a window: about a half, a third, a quarter, a
/// sixth and an eighth of it, and 1 (all at most half the window).
fn strides_for(window: usize) -> Vec<usize> {
    let mut strides: Vec<usize> = [2, 3, 4, 6, 8, window.max(2)]
        .iter()
        .map(|d| (window / d).max(1))
        .collect();
    strides.sort_unstable_by(|a, b| b.cmp(a));
    strides.dedup();
    strides
}

/// Sums per setting over the images.
#[derive(Default, Clone)]
struct Sums {
    seconds: f64,
    agreement: f64,
    areas: [f64; 4],
    images: usize,
}

pub fn run_defaults(args: &DefaultsArgs) -> anyhow::Result<()> {
    let device = device_from(args.run.device)?;
    let placement = Placement {
        runtime: args.runtime,
        ..Placement::on(device)
    };
    let model = LoadedModel::load_on(&args.model, &args.run.models, placement)?;
    println!("{} on {}", model.name, model.computed_by(false));
    let images = named_images(&model, None, args.count, &args.run.data)?;
    anyhow::ensure!(!images.is_empty(), "no images to measure on");
    let shape = model.classifier.input_shape();
    let windows = if args.windows.is_empty() {
        let conditional = model.conditional_windows(lens_engine::methods::DEFAULT_PADDING);
        if conditional.is_empty() {
            vec![2, 4, 6, 8]
        } else {
            conditional
        }
    } else {
        args.windows.clone()
    };
    let batch_size = args.run.batch_size.unwrap_or(default_batch_size(device));
    // Timed as the page's run takes it: with the other classes' maps.
    let map = |c: &Candidate, seed: u64, image: &InputImage| -> anyhow::Result<(Vec<f32>, f64)> {
        let setting = MapSetting {
            window: c.window,
            stride: c.stride,
            samples: c.samples,
            batch_size,
            seed,
            target: Target::Predicted,
        };
        let began = Instant::now();
        let explanation = page_map(&model, c.kind, &setting, c.budget, image)?;
        Ok((explanation.map().to_vec(), began.elapsed().as_secs_f64()))
    };

    // Passes per second of each method here, from a coarse run on the first image.
    let mut kinds = vec![
        (MethodKind::EfficientPda, 1),
        (MethodKind::Occlusion, 1),
        (MethodKind::SampledMean, args.mean_samples),
    ];
    kinds.extend(args.pda_samples.iter().map(|&s| (MethodKind::Pda, s)));
    let largest = *windows.iter().max().expect("at least one window");
    let mut rates = HashMap::new();
    for &(kind, samples) in &kinds {
        let probe = Candidate {
            kind,
            samples,
            window: largest,
            stride: largest,
            budget: 1.0,
        };
        map(&probe, args.run.seed, &images[0].1)?; // warm up
        let (_, seconds) = map(&probe, args.run.seed, &images[0].1)?;
        let rate = probe.passes(shape.height, shape.width) as f64 / seconds;
        eprintln!("{} (S = {samples}): {rate:.0} passes a second", kind.name());
        rates.insert((kind, samples), rate);
    }
    let estimate =
        |c: &Candidate| c.passes(shape.height, shape.width) as f64 / rates[&(c.kind, c.samples)];

    let mut budgets = args.budgets.clone();
    budgets.sort_by(|a, b| b.total_cmp(a));
    anyhow::ensure!(
        budgets.iter().all(|b| *b > 0.0 && *b <= 1.0),
        "--budgets are shares of the windows, in (0, 1]"
    );
    let mut candidates = Vec::new();
    for &window in &windows {
        let strides = if args.strides.is_empty() {
            strides_for(window)
        } else {
            args.strides.clone()
        };
        for stride in strides {
            for &(kind, samples) in &kinds {
                let mut computed_before = None;
                for &budget in &budgets {
                    let candidate = Candidate {
                        kind,
                        samples,
                        window,
                        stride,
                        budget,
                    };
                    // A smaller budget that computes as many windows (the
                    // covering lattice's floor) is the same setting.
                    let computed = candidate.windows(shape.height, shape.width);
                    if computed_before.replace(computed) != Some(computed) {
                        candidates.push(candidate);
                    }
                }
            }
        }
    }
    // Settings estimated well over the budget are not run.
    let runs = |c: &Candidate| estimate(c) <= args.budget * 1.25;
    let previous = previous_candidate(args, &model)?;
    let mut sums = vec![Sums::default(); candidates.len()];
    let mut previous_sums = Sums::default();
    let mut shown = Vec::new();
    let mut references_at = BTreeMap::new();
    for (name, image) in &images {
        let class = Target::Predicted
            .resolve(&probabilities_of(model.classifier.as_ref(), image)?)
            .0;
        let areas = |map: &[f32]| -> anyhow::Result<[f64; 4]> {
            let mut areas = [0.0; 4];
            for (i, removal) in [Removal::Blur, Removal::Grey].into_iter().enumerate() {
                let params = DeletionParams::new(class, removal, batch_size);
                let curves = map_curves(model.classifier.as_ref(), image, map, &params)?;
                areas[2 * i] = curves.deletion_auc();
                areas[2 * i + 1] = curves.insertion_auc();
            }
            Ok(areas)
        };
        let mut references = BTreeMap::new();
        for &window in &windows {
            // The finest stride run with every window computed.
            let finest = args.reference_stride.or_else(|| {
                (candidates.iter())
                    .filter(|c| c.window == window && c.budget == 1.0 && runs(c))
                    .map(|c| c.stride)
                    .min()
            });
            let Some(finest) = finest else {
                continue;
            };
            let reference = Candidate {
                kind: MethodKind::Pda,
                samples: args.reference_samples,
                window,
                stride: finest,
                budget: 1.0,
            };
            eprintln!("{name}: the reference at window {window} (stride {finest})");
            references.insert(window, map(&reference, args.run.seed + 1, image)?.0);
            references_at.insert(window, finest);
        }
        for (candidate, sum) in candidates.iter().zip(&mut sums) {
            if !runs(candidate) {
                continue;
            }
            let (m, seconds) = map(candidate, args.run.seed, image)?;
            sum.seconds += seconds;
            if let Some(reference) = references.get(&candidate.window) {
                sum.agreement += rank_correlation(&m, reference);
            }
            for (total, area) in sum.areas.iter_mut().zip(areas(&m)?) {
                *total += area;
            }
            sum.images += 1;
        }
        if let Some(previous) = &previous {
            let (m, seconds) = map(previous, args.run.seed, image)?;
            previous_sums.seconds += seconds;
            if let Some(reference) = references.get(&previous.window) {
                previous_sums.agreement += rank_correlation(&m, reference);
            }
            for (total, area) in previous_sums.areas.iter_mut().zip(areas(&m)?) {
                *total += area;
            }
            previous_sums.images += 1;
            shown.push((name.clone(), image.clone(), m));
        }
        eprintln!("{name}: measured");
    }

    let settings: Vec<MeasuredSetting> = candidates
        .iter()
        .zip(&sums)
        .map(|(c, s)| measured(c, s, estimate(c), references_at.contains_key(&c.window)))
        .collect();
    let previous_measured = previous.as_ref().map(|p| {
        let has_reference = references_at.contains_key(&p.window);
        measured(p, &previous_sums, estimate(p), has_reference)
    });
    let device_name = if device.is_cuda() { "CUDA" } else { "CPU" };
    let measurement = DeviceDefaults {
        device: device_name.into(),
        machine: args.machine.clone(),
        budget_seconds: args.budget,
        reference: match args.reference_stride {
            Some(stride) => format!("PDA, S = {}, at stride {stride}", args.reference_samples),
            None => format!(
                "PDA, S = {}, at the finest stride measured at each window",
                args.reference_samples
            ),
        },
        images: images.iter().map(|(name, _)| name.clone()).collect(),
        settings,
        previous: previous_measured,
        measured_unix: lens_worker::store::now_unix(),
    };
    print_table(&model.name, &measurement);
    let chosen = measurement.chosen().cloned();

    if let (Some(figure), Some(chosen), Some(previous)) = (&args.figure, &chosen, &previous) {
        let now = Candidate {
            kind: method_named(&chosen.method)?,
            samples: chosen.samples.unwrap_or(1),
            window: chosen.window,
            stride: chosen.stride,
            budget: chosen.budget_share(),
        };
        crate::figures::plot::use_font(&args.font)?;
        let mut rows = Vec::new();
        for (name, image, before) in &shown {
            let (after, _) = map(&now, args.run.seed, image)?;
            rows.push(Row {
                label: name.clone(),
                tiles: vec![
                    overlay::render(image, before),
                    overlay::render(image, &after),
                ],
            });
        }
        let columns = [
            format!("before: {}", setting_name(previous)),
            format!("now: {}", setting_name(&now)),
        ];
        let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
        titled(&columns, &rows)?.save(figure)?;
        eprintln!("figure written to {}", figure.display());
    }

    let out = args
        .out
        .clone()
        .unwrap_or_else(|| model.folder.join(DEFAULTS_FILE));
    // Other devices' measurements in the file stay.
    let mut all: ModelDefaults = match std::fs::read_to_string(&out) {
        Ok(text) => serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{} is unreadable: {e}", out.display()))?,
        Err(_) => ModelDefaults::default(),
    };
    all.replace(measurement);
    std::fs::write(&out, serde_json::to_string_pretty(&all)? + "\n")?;
    eprintln!("written to {}", out.display());
    Ok(())
}

/// The previous default from `--previous`, if given.
fn previous_candidate(
    args: &DefaultsArgs,
    model: &LoadedModel,
) -> anyhow::Result<Option<Candidate>> {
    if args.previous.is_empty() {
        return Ok(None);
    }
    let (method, window, stride, samples) = match args.previous.as_slice() {
        [method, window, stride] => (method, window, stride, "1"),
        [method, window, stride, samples] => (method, window, stride, samples.as_str()),
        _ => anyhow::bail!(
            "--previous takes method,window,stride[,samples] (efficient-pda,10,10 or pda,24,12,2)"
        ),
    };
    let kind = method_named(method)?;
    let window: usize = window.parse()?;
    let stride: usize = stride.parse()?;
    let shape = model.classifier.input_shape();
    anyhow::ensure!(
        window <= shape.height.min(shape.width) && stride >= 1,
        "--previous: window {window} stride {stride} does not fit {} x {}",
        shape.height,
        shape.width
    );
    Ok(Some(Candidate {
        kind,
        samples: samples.parse()?,
        window,
        stride,
        budget: args.previous_budget,
    }))
}

fn method_named(name: &str) -> anyhow::Result<MethodKind> {
    MethodKind::from_name(name).ok_or_else(|| anyhow::anyhow!("no method named {name}"))
}

fn measured(c: &Candidate, s: &Sums, estimated: f64, with_agreement: bool) -> MeasuredSetting {
    let n = s.images as f64;
    let ran = s.images > 0;
    let mean = |total: f64| ran.then_some(total / n);
    MeasuredSetting {
        method: c.kind.name().to_string(),
        samples: c.samples_shown(),
        window: c.window,
        stride: c.stride,
        budget: (c.budget < 1.0).then_some(c.budget),
        seconds: if ran { s.seconds / n } else { estimated },
        measured: ran,
        rank_correlation: mean(s.agreement).filter(|_| with_agreement),
        deletion_blur: mean(s.areas[0]),
        insertion_blur: mean(s.areas[1]),
        deletion_grey: mean(s.areas[2]),
        insertion_grey: mean(s.areas[3]),
    }
}

/// The method, then the window and stride on a second line (a figure's
/// column is one map wide).
fn setting_name(c: &Candidate) -> String {
    let method = match c.samples_shown() {
        Some(s) => format!("{} S={s}", c.kind.name()),
        None => c.kind.name().to_string(),
    };
    let computed = if c.budget < 1.0 {
        format!(", {}", share(c.budget))
    } else {
        String::new()
    };
    format!("{method}\nk {}, stride {}{computed}", c.window, c.stride)
}

/// A share of the windows as a fraction ("1/16", "every").
fn share(budget: f64) -> String {
    if budget >= 1.0 {
        "every".into()
    } else {
        crate::adaptive::fraction(budget)
    }
}

/// The table on stdout, in Markdown: measured settings first, the chosen
/// one in bold.
fn print_table(model: &str, m: &DeviceDefaults) {
    let chosen = m.chosen();
    println!(
        "{model} on {} ({}), {} images, budget {} s; reference {}\n",
        m.device,
        m.machine,
        m.images.len(),
        m.budget_seconds,
        m.reference
    );
    println!("| method | k | stride | windows computed | seconds | agreement with PDA | deletion blur / grey | insertion blur / grey | gap |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let figure = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
    let row = |s: &MeasuredSetting, label: &str| {
        let method = match s.samples {
            Some(n) => format!("{} (S = {n})", s.method),
            None => s.method.clone(),
        };
        let seconds = if s.measured {
            format!("{:.2}", s.seconds)
        } else {
            format!("~{:.0} (estimated)", s.seconds)
        };
        let text = format!(
            "| {method}{label} | {} | {} | {} | {seconds} | {} | {} / {} | {} / {} | {} |",
            s.window,
            s.stride,
            share(s.budget_share()),
            figure(s.rank_correlation),
            figure(s.deletion_blur),
            figure(s.deletion_grey),
            figure(s.insertion_blur),
            figure(s.insertion_grey),
            figure(s.faithfulness_gap()),
        );
        if chosen == Some(s) {
            println!("{}", text.replace("| ", "| **").replace(" |", "** |"));
        } else {
            println!("{text}");
        }
    };
    for s in m.settings.iter().filter(|s| s.measured) {
        row(s, "");
    }
    if let Some(previous) = &m.previous {
        row(previous, " (previous default)");
    }
    for s in m.settings.iter().filter(|s| !s.measured) {
        row(s, "");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_counts_the_windows_it_computes_and_shares_read_as_fractions() {
        let at = |stride, budget| Candidate {
            kind: MethodKind::Pda,
            samples: 2,
            window: 10,
            stride,
            budget,
        };
        // 108 x 108 windows at stride 2; a sixteenth is the covering
        // lattice (every 4th position and the last: 28 x 28).
        assert_eq!(at(2, 1.0).windows(224, 224), 108 * 108);
        assert_eq!(at(2, 0.0625).windows(224, 224), 28 * 28);
        assert_eq!(at(2, 0.0625).passes(224, 224), 2 * 28 * 28 + 1);
        assert_eq!(
            at(2, 0.03125).windows(224, 224),
            28 * 28,
            "the lattice is the floor"
        );
        assert!(at(2, 0.25).windows(224, 224) >= 108 * 108 / 4);
        assert_eq!(share(0.0625), "1/16");
        assert_eq!(share(1.0), "every");
        assert_eq!(share(0.3), "0.3");
    }

    #[test]
    fn strides_are_at_most_half_the_window_and_reach_one() {
        assert_eq!(strides_for(24), vec![12, 8, 6, 4, 3, 1]);
        assert_eq!(strides_for(10), vec![5, 3, 2, 1]);
        assert_eq!(strides_for(4), vec![2, 1]);
        assert_eq!(strides_for(2), vec![1]);
    }
}
