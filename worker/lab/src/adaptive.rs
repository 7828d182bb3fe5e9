//! `evidence-lens-lab adaptive`: how close a budgeted map (adaptive
//! refinement, `engine/refine.rs`) comes to the full map, beside the map a
//! plain coarser stride of about the same cost gives (as it is, and with
//! the windows between interpolated, `interpolated.rs`), a hierarchical
//! occlusion of the same budget (HiPe's rule, `hierarchical.rs`) and the
//! refinement choosing its windows in hindsight (`hindsight.rs`). Per
//! method, budget and image: rank correlation and top-10% overlap with the
//! full map at the reference stride, and each map's deletion and insertion
//! (blur and grey); the table gives the means (and the worst image).

use std::collections::hash_map::{Entry, HashMap};
use std::ops::ControlFlow;
use std::path::PathBuf;

use clap::Args;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use lens_engine::agreement::{rank_correlation, top_overlap};
use lens_engine::engine::{
    default_batch_size, explain, map_curves, positions, DeletionParams, EvidenceGrid,
    ExplainParams, Explanation, InputImage, Progress, Refinement, Removal, Takeover, WindowFill,
};
use lens_engine::methods::{self, MethodChoice, MethodKind, SamplerKind};
use lens_engine::models::{LoadedModel, Placement, Runtime};
use lens_worker::cli::{device_from, named_images, plain_params, write_report};
use lens_worker::cli::{MapSetting, RunOptions};

use crate::hierarchical::hierarchical_field;
use crate::hindsight::hindsight_field;
use crate::interpolated::{interpolated_field, lattice_windows};
use crate::memo::{Memo, Seen};

#[derive(Args, Debug)]
pub struct AdaptiveArgs {
    /// `digits`, or a model folder under --models.
    #[arg(long, default_value = "digits")]
    pub model: String,
    /// Images explained: held-out digits of every label, or the first
    /// photos of --photos.
    #[arg(long, default_value_t = 10)]
    pub count: usize,
    #[arg(long)]
    pub photos: Option<PathBuf>,
    /// The window methods measured (PDA once per --samples).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "efficient-pda,pda,sampled-mean,occlusion"
    )]
    pub methods: Vec<String>,
    /// S of PDA and the sampled mean (PDA is measured at each).
    #[arg(long, value_delimiter = ',', default_value = "2,10")]
    pub samples: Vec<usize>,
    /// Window side [default: the model's].
    #[arg(long)]
    pub window: Option<usize>,
    /// The full map's stride (the reference).
    #[arg(long, default_value_t = 1)]
    pub stride: usize,
    /// Shares of the windows computed.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0.25,0.125,0.0625,0.03125"
    )]
    pub budgets: Vec<f64>,
    /// S of the PDA map that PDA's rows are also compared with (a map
    /// with many samples, other draws); 0 leaves the comparison out.
    #[arg(long, default_value_t = 32)]
    pub reference_samples: usize,
    #[arg(long, value_enum)]
    pub runtime: Option<Runtime>,
    /// Where the JSON report goes (the table goes to stdout either way).
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub run: RunOptions,
}

/// One method at one budget, over the images.
#[derive(Debug, Serialize, Deserialize)]
pub struct AdaptiveRow {
    /// "PDA (S = 10)".
    pub method: String,
    pub budget: f64,
    /// Forward passes against the full map's (the mean over images).
    pub passes_share: f64,
    pub rank: Agreement,
    pub top_overlap: Agreement,
    /// The plain stride whose passes come nearest the budget's, its share
    /// of the passes and agreement (none when the window is the stride).
    pub plain_stride: Option<usize>,
    pub plain_passes_share: f64,
    pub plain_rank: Agreement,
    pub plain_top_overlap: Agreement,
    /// The plain stride (a multiple of the reference) whose windows come
    /// nearest the budget's, the rest of the reference grid interpolated
    /// between them (`interpolated.rs`), made from the full run's field.
    /// Absent in older reports (before the fourth session of 2026-12-07).
    #[serde(default)]
    pub interpolated_stride: Option<usize>,
    #[serde(default)]
    pub interpolated_passes_share: f64,
    #[serde(default)]
    pub interpolated_rank: Agreement,
    #[serde(default)]
    pub interpolated_top_overlap: Agreement,
    /// PDA only: rank correlation with PDA of many samples of the full map
    /// and of the budgeted one.
    pub full_against_many: Option<Agreement>,
    pub refined_against_many: Option<Agreement>,
    /// HiPe's rule with the same budget: its share of the passes (it may
    /// spend less) and agreement.
    pub hierarchical_passes_share: f64,
    pub hierarchical_rank: Agreement,
    pub hierarchical_top_overlap: Agreement,
    /// The refinement choosing in hindsight (`hindsight.rs`: the windows
    /// worst estimated, from the full run), the same cost: how far the
    /// scheme can go. Absent in reports made before 2026-12-07.
    #[serde(default)]
    pub hindsight_rank: Agreement,
    #[serde(default)]
    pub hindsight_top_overlap: Agreement,
    /// Insertion minus deletion, the mean of blur and grey (higher is more
    /// faithful): the full map's, the refined, the plain stride's, HiPe's.
    pub gap_full: f64,
    pub gap_refined: f64,
    pub gap_plain: f64,
    pub gap_hierarchical: f64,
}

/// A mean over images and the worst image.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Agreement {
    pub mean: f64,
    pub worst: f64,
}

impl Agreement {
    fn of(values: &[f64]) -> Self {
        if values.is_empty() {
            return Agreement::default();
        }
        Agreement {
            mean: values.iter().sum::<f64>() / values.len() as f64,
            worst: values.iter().copied().fold(f64::INFINITY, f64::min),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct AdaptiveReport {
    pub model: String,
    pub computed_by: String,
    pub images: Vec<String>,
    pub window: usize,
    pub stride: usize,
    /// S of the PDA map PDA's rows are compared with (0: none).
    pub reference_samples: usize,
    pub rows: Vec<AdaptiveRow>,
}

/// The measured settings: each method, PDA and the sampled mean at each S.
fn settings(args: &AdaptiveArgs) -> anyhow::Result<Vec<(MethodKind, usize)>> {
    let mut settings = Vec::new();
    for name in &args.methods {
        let kind = MethodKind::from_name(name)
            .filter(|k| !k.needs_gradients())
            .ok_or_else(|| anyhow::anyhow!("--methods {name}: not a window method"))?;
        match kind {
            MethodKind::Pda | MethodKind::SampledMean => {
                settings.extend(args.samples.iter().map(|&s| (kind, s)))
            }
            _ => settings.push((kind, 1)),
        }
    }
    Ok(settings)
}

fn label(kind: MethodKind, samples: usize) -> String {
    match kind {
        MethodKind::Pda | MethodKind::SampledMean => format!("{} (S = {samples})", kind.name()),
        _ => kind.name().to_string(),
    }
}

pub fn run_adaptive(args: &AdaptiveArgs) -> anyhow::Result<()> {
    let device = device_from(args.run.device)?;
    let placement = Placement {
        runtime: args.runtime,
        ..Placement::on(device)
    };
    let mut model = LoadedModel::load_on(&args.model, &args.run.models, placement)?;
    // The budgeted and plain runs repeat windows of the full run (the same
    // keyed draws make the same inputs): each is computed once per method.
    let seen = Seen::default();
    model.classifier = Box::new(Memo::new(model.classifier, seen.clone()));
    let images = named_images(&model, args.photos.as_deref(), args.count, &args.run.data)?;
    let window = args.window.unwrap_or(model.resize.default_window());
    let shape = model.classifier.input_shape();
    let grid = |stride: usize| {
        positions(shape.height, window, stride).len() * positions(shape.width, window, stride).len()
    };
    let mut rows = Vec::new();
    for (kind, samples) in settings(args)? {
        let choice = MethodChoice {
            kind,
            sampler: SamplerKind::Auto,
            samples,
            padding: methods::DEFAULT_PADDING,
            occlusion_value: methods::DEFAULT_OCCLUSION_VALUE,
        };
        let fill = methods::window_fill(&model, &choice, window)?;
        seen.forget();
        let batch_size = args.run.batch_size.unwrap_or(default_batch_size(device));
        let params_for = |fill: &dyn WindowFill, stride, budget, seed| {
            let setting = MapSetting {
                window,
                stride,
                samples: fill.samples_per_window(),
                batch_size,
                seed,
                target: lens_engine::engine::Target::Predicted,
            };
            ExplainParams {
                budget,
                ..plain_params(&setting, kind.quantity())
            }
        };
        let map_with = |fill: &dyn WindowFill, image: &InputImage, stride, budget, seed| {
            let params = params_for(fill, stride, budget, seed);
            explain(model.classifier.as_ref(), image, fill, &params, &mut |_| {
                ControlFlow::Continue(())
            })
        };
        let seed = args.run.seed;
        let map = |image: &InputImage, stride: usize, budget: f64| {
            map_with(fill.as_ref(), image, stride, budget, seed)
        };
        // Maps of the HiPe and hindsight window fields, made by the engine's
        // own per-pixel mean, as the refined maps are.
        let full_grid =
            EvidenceGrid::new(shape.height, shape.width, window, args.stride, Device::Cpu);
        let map_of = |field: &[f64]| -> anyhow::Result<Vec<f32>> {
            let map = full_grid.per_pixel_mean(&Tensor::from_slice(field));
            Ok(Vec::<f32>::try_from(map.to_kind(Kind::Float).view([-1]))?)
        };
        // The full maps with their window fields (the explained class's
        // evidence per window), which HiPe's rule picks from.
        let mut fulls = Vec::new();
        let mut fields = Vec::new();
        for (name, image) in &images {
            let params = ExplainParams {
                takeover: Takeover {
                    report: true,
                    done: None,
                },
                ..params_for(fill.as_ref(), args.stride, 1.0, seed)
            };
            let mut field = vec![f64::NAN; full_grid.cells()];
            let full = explain(
                model.classifier.as_ref(),
                image,
                fill.as_ref(),
                &params,
                &mut |p| {
                    if let Progress::Windows(results) = p {
                        let classes = results.evidence.len() / results.cells.len().max(1);
                        for (i, &cell) in results.cells.iter().enumerate() {
                            field[cell as usize] = results.evidence[i * classes];
                        }
                    }
                    ControlFlow::Continue(())
                },
            )?;
            // The field must make the engine's map, or HiPe's row means nothing.
            let remade = map_of(&field)?;
            let scale = full.map().iter().fold(1e-6f32, |m, v| m.max(v.abs()));
            let off = (remade.iter().zip(full.map()))
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            anyhow::ensure!(
                off <= 1e-3 * scale,
                "{name}: the window field does not make the map ({off})"
            );
            fulls.push(full);
            fields.push(field);
        }
        // Insertion minus deletion, blur and grey.
        let gap = |image: &InputImage, class: usize, map: &[f32]| -> anyhow::Result<f64> {
            let mut total = 0.0;
            for removal in [Removal::Blur, Removal::Grey] {
                let params = DeletionParams::new(class, removal, batch_size);
                let curves = map_curves(model.classifier.as_ref(), image, map, &params)?;
                total += curves.insertion_auc() - curves.deletion_auc();
            }
            Ok(total / 2.0)
        };
        let full_gaps = (images.iter().zip(&fulls))
            .map(|((_, image), full)| gap(image, full.explained, full.map()))
            .collect::<anyhow::Result<Vec<f64>>>()?;
        // PDA with many samples and other draws, for PDA's rows.
        let references = if kind == MethodKind::Pda && args.reference_samples > 0 {
            let many_samples = MethodChoice {
                samples: args.reference_samples,
                ..choice.clone()
            };
            let many = methods::window_fill(&model, &many_samples, window)?;
            let maps = images
                .iter()
                .map(|(_, image)| map_with(many.as_ref(), image, args.stride, 1.0, seed + 1))
                .collect::<Result<Vec<_>, _>>()?;
            Some(maps)
        } else {
            None
        };
        // Each plain stride's maps and their gaps, made once whichever
        // budgets compare with it.
        let mut plain_maps: HashMap<usize, Vec<(Explanation, f64)>> = HashMap::new();
        for &budget in &args.budgets {
            let (mut ranks, mut tops, mut shares) = (Vec::new(), Vec::new(), Vec::new());
            let (mut plain_ranks, mut plain_tops) = (Vec::new(), Vec::new());
            let mut plain = None;
            let (mut full_many, mut part_many) = (Vec::new(), Vec::new());
            let (mut hipe_ranks, mut hipe_tops, mut hipe_shares) =
                (Vec::new(), Vec::new(), Vec::new());
            let (mut part_gaps, mut plain_gaps, mut hipe_gaps) =
                (Vec::new(), Vec::new(), Vec::new());
            let (mut hindsight_ranks, mut hindsight_tops) = (Vec::new(), Vec::new());
            let (mut interpolated_ranks, mut interpolated_tops) = (Vec::new(), Vec::new());
            let mut interpolated = None;
            for (i, ((_, image), full)) in images.iter().zip(&fulls).enumerate() {
                let part = map(image, args.stride, budget)?;
                part_gaps.push(gap(image, full.explained, part.map())?);
                let plan = Refinement::new(
                    full_grid.rows(),
                    full_grid.columns(),
                    window,
                    args.stride,
                    budget,
                );
                let (values, computed) = hierarchical_field(&fields[i], &plan);
                let hipe = map_of(&values)?;
                hipe_ranks.push(rank_correlation(full.map(), &hipe));
                hipe_tops.push(top_overlap(full.map(), &hipe, 0.1));
                let passes = computed * fill.samples_per_window() + 1;
                hipe_shares.push(passes as f64 / full.forward_passes as f64);
                hipe_gaps.push(gap(image, full.explained, &hipe)?);
                let best = map_of(&hindsight_field(&fields[i], &plan))?;
                hindsight_ranks.push(rank_correlation(full.map(), &best));
                hindsight_tops.push(top_overlap(full.map(), &best, 0.1));
                // The interpolated plain stride with as many windows.
                let (rows, columns) = (full_grid.rows(), full_grid.columns());
                let off = |step: usize| {
                    (lattice_windows(rows, columns, step) as f64 / part.windows_computed() as f64)
                        .ln()
                        .abs()
                };
                interpolated =
                    (2..=window / args.stride).min_by(|&a, &b| off(a).total_cmp(&off(b)));
                if let Some(step) = interpolated {
                    let estimated = map_of(&interpolated_field(&fields[i], rows, columns, step))?;
                    interpolated_ranks.push(rank_correlation(full.map(), &estimated));
                    interpolated_tops.push(top_overlap(full.map(), &estimated, 0.1));
                }
                if let Some(references) = &references {
                    full_many.push(rank_correlation(references[i].map(), full.map()));
                    part_many.push(rank_correlation(references[i].map(), part.map()));
                }
                ranks.push(rank_correlation(full.map(), part.map()));
                tops.push(top_overlap(full.map(), part.map(), 0.1));
                shares.push(part.forward_passes as f64 / full.forward_passes as f64);
                // The plain stride whose cost comes nearest the budget's.
                let computed = part.windows_computed() as f64;
                let distance = |s: usize| (grid(s) as f64 / computed).ln().abs();
                plain =
                    (args.stride + 1..=window).min_by(|&a, &b| distance(a).total_cmp(&distance(b)));
                if let Some(stride) = plain {
                    if let Entry::Vacant(place) = plain_maps.entry(stride) {
                        let mut maps = Vec::new();
                        for ((_, image), full) in images.iter().zip(&fulls) {
                            let coarse = map(image, stride, 1.0)?;
                            let coarse_gap = gap(image, full.explained, coarse.map())?;
                            maps.push((coarse, coarse_gap));
                        }
                        place.insert(maps);
                    }
                    let (coarse, coarse_gap) = &plain_maps[&stride][i];
                    plain_ranks.push(rank_correlation(full.map(), coarse.map()));
                    plain_tops.push(top_overlap(full.map(), coarse.map(), 0.1));
                    plain_gaps.push(*coarse_gap);
                }
            }
            let row = AdaptiveRow {
                method: label(kind, samples),
                budget,
                passes_share: Agreement::of(&shares).mean,
                rank: Agreement::of(&ranks),
                top_overlap: Agreement::of(&tops),
                plain_stride: plain,
                plain_passes_share: plain
                    .map_or(0.0, |s| grid(s) as f64 / grid(args.stride) as f64),
                plain_rank: Agreement::of(&plain_ranks),
                plain_top_overlap: Agreement::of(&plain_tops),
                interpolated_stride: interpolated.map(|step| step * args.stride),
                interpolated_passes_share: interpolated.map_or(0.0, |step| {
                    lattice_windows(full_grid.rows(), full_grid.columns(), step) as f64
                        / full_grid.cells() as f64
                }),
                interpolated_rank: Agreement::of(&interpolated_ranks),
                interpolated_top_overlap: Agreement::of(&interpolated_tops),
                full_against_many: references.is_some().then(|| Agreement::of(&full_many)),
                refined_against_many: references.is_some().then(|| Agreement::of(&part_many)),
                hierarchical_passes_share: Agreement::of(&hipe_shares).mean,
                hierarchical_rank: Agreement::of(&hipe_ranks),
                hierarchical_top_overlap: Agreement::of(&hipe_tops),
                hindsight_rank: Agreement::of(&hindsight_ranks),
                hindsight_top_overlap: Agreement::of(&hindsight_tops),
                gap_full: Agreement::of(&full_gaps).mean,
                gap_refined: Agreement::of(&part_gaps).mean,
                gap_plain: Agreement::of(&plain_gaps).mean,
                gap_hierarchical: Agreement::of(&hipe_gaps).mean,
            };
            eprintln!("{}", table_line(&row));
            eprintln!("({} distinct inputs so far)", seen.distinct_inputs());
            rows.push(row);
        }
    }
    let report = AdaptiveReport {
        model: model.name.clone(),
        computed_by: model.computed_by(false),
        images: images.iter().map(|(name, _)| name.clone()).collect(),
        window,
        stride: args.stride,
        reference_samples: args.reference_samples,
        rows,
    };
    println!("{}", table(&report));
    write_report(args.out.as_deref(), &report)
}

fn table_line(row: &AdaptiveRow) -> String {
    let pair = |rank: &Agreement, top: &Agreement| {
        format!(
            "{:.3} / {:.3} (worst {:.3} / {:.3})",
            rank.mean, top.mean, rank.worst, top.worst
        )
    };
    let plain = match row.plain_stride {
        Some(stride) => format!(
            "stride {stride} ({:.3}): {}",
            row.plain_passes_share,
            pair(&row.plain_rank, &row.plain_top_overlap)
        ),
        None => "none (the window is the stride)".to_string(),
    };
    let interpolated = match row.interpolated_stride {
        Some(stride) => format!(
            "stride {stride} ({:.3}): {}",
            row.interpolated_passes_share,
            pair(&row.interpolated_rank, &row.interpolated_top_overlap)
        ),
        None => String::new(),
    };
    let many = match (&row.full_against_many, &row.refined_against_many) {
        (Some(full), Some(refined)) => format!("{:.3} / {:.3}", full.mean, refined.mean),
        _ => String::new(),
    };
    format!(
        "| {} | {} ({:.3}) | {} | {} | {plain} | {interpolated} | ({:.3}): {} | {:.3} / {:.3} / {:.3} / {:.3} | {many} |",
        row.method,
        fraction(row.budget),
        row.passes_share,
        pair(&row.rank, &row.top_overlap),
        pair(&row.hindsight_rank, &row.hindsight_top_overlap),
        row.hierarchical_passes_share,
        pair(&row.hierarchical_rank, &row.hierarchical_top_overlap),
        row.gap_full,
        row.gap_refined,
        row.gap_plain,
        row.gap_hierarchical,
    )
}

/// 0.25 as "1/4".
pub fn fraction(budget: f64) -> String {
    let inverse = 1.0 / budget;
    if (inverse - inverse.round()).abs() < 1e-9 {
        format!("1/{}", inverse.round())
    } else {
        format!("{budget}")
    }
}

/// The report as a Markdown table.
pub fn table(report: &AdaptiveReport) -> String {
    let against_many = match report.reference_samples {
        0 => String::new(),
        samples => format!("; PDA's rows also against PDA with S = {samples} (other draws)"),
    };
    let mut lines = vec![
        format!(
            "{}, {} images, window {}, full map at stride {} ({}){against_many}",
            report.model,
            report.images.len(),
            report.window,
            report.stride,
            report.computed_by,
        ),
        String::new(),
        "| method | budget (passes) | refined: rank / top-10% | chosen in hindsight: rank / top-10% | plain stride (passes): rank / top-10% | plain stride interpolated (passes): rank / top-10% | HiPe's rule (passes): rank / top-10% | gap: full / refined / plain / HiPe | PDA: rank with PDA of many samples, full / refined |"
            .to_string(),
        "|---|---|---|---|---|---|---|---|---|".to_string(),
    ];
    lines.extend(report.rows.iter().map(table_line));
    lines.join("\n")
}
