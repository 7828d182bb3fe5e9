//! `evidence-lens explain`: the engine in batch mode for researchers. One
//! image or a folder in, one method or several; per image, method and class
//! a raw map (`.npy`, float32, H x W) and an overlay PNG with a legend; one
//! JSON summary line per image and method on stdout, with deletion and
//! insertion curves when asked (`--evaluate`). A bad image is reported on
//! stderr and the rest are still explained.

mod evaluate;
mod measure_agreement;
pub mod npy;
pub mod overlay;

pub use evaluate::{run_evaluate, CurveArgs, EvaluateArgs};
pub use measure_agreement::{named_images, run_agreement, AgreementArgs};

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};

use crate::engine::{
    default_batch_size, ExplainParams, MapClasses, Progress, Removal, Schedule, Target, WindowFill,
};
use crate::methods::{self, MethodChoice, MethodKind, SamplerKind};
use crate::models::{LoadedModel, Placement, Precision, Runtime};
use crate::server::request;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum DeviceArg {
    Auto,
    Cpu,
    Cuda,
}

#[derive(Args, Debug)]
pub struct ExplainArgs {
    /// An image (PNG or JPEG) or a folder of them.
    pub input: PathBuf,
    /// `digits`, a model folder name under --models, or a path to a model folder.
    #[arg(long, default_value = "efficientnet-lite0")]
    pub model: String,
    /// One method, or several separated by commas (each gets its own files).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "efficient-pda"
    )]
    pub method: Vec<MethodKind>,
    #[arg(long, value_enum, default_value_t = SamplerKind::Auto)]
    pub sampler: SamplerKind,
    /// Window side k [default: 4 for digits, 10 for photos].
    #[arg(long)]
    pub window: Option<usize>,
    /// Distance between windows.
    #[arg(long, default_value_t = 1)]
    pub stride: usize,
    /// The share of the windows to compute (window methods): below 1, the
    /// coarsest windows first, then those at the edges of the evidence; the
    /// rest are estimated from their computed neighbours.
    #[arg(long, default_value_t = 1.0)]
    pub budget: f64,
    /// Ring around the window for the conditional sampler: l = k + 2 x padding
    /// must be the side of the model's patch statistics.
    #[arg(long, default_value_t = methods::DEFAULT_PADDING)]
    pub padding: usize,
    /// Samples S per window (PDA, sampled mean).
    #[arg(long, default_value_t = 10)]
    pub samples: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Perturbed images per forward pass [default: 16 on a CPU, 256 on CUDA].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// `predicted`, `top-N`, or class names / indices separated by commas
    /// (the first is explained, maps of the others come from the same passes).
    #[arg(long, default_value = "predicted")]
    pub classes: String,
    /// Grey level (0-1) that occlusion fills the window with.
    #[arg(long, default_value_t = methods::DEFAULT_OCCLUSION_VALUE)]
    pub occlusion_value: f32,
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
    /// `half` runs the network in fp16 where safe (CUDA only): faster, maps
    /// differ slightly from `full`.
    #[arg(long, value_enum, default_value_t = Precision::Full)]
    pub precision: Precision,
    /// What runs the window methods: `onnx` (ONNX Runtime, on the CPU) or
    /// `torch` (libtorch). Default: ONNX Runtime on a CPU where the model
    /// has an ONNX file, libtorch on CUDA. Gradient methods run on libtorch.
    #[arg(long, value_enum)]
    pub runtime: Option<Runtime>,
    /// Where the .npy and .png files go.
    #[arg(long, default_value = "explanations")]
    pub out: PathBuf,
    /// The models folder (each model is a sub-folder with a model.toml).
    #[arg(long, default_value = "models")]
    pub models: PathBuf,
    /// Also measure how faithful each explained map is: deletion and
    /// insertion curves with this removal (blur, grey, or both: blur,grey),
    /// beside a random and an edge baseline.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub evaluate: Vec<Removal>,
    #[command(flatten)]
    pub curves: CurveArgs,
}

pub fn device_from(arg: DeviceArg) -> anyhow::Result<tch::Device> {
    Ok(match arg {
        DeviceArg::Auto => tch::Device::cuda_if_available(),
        DeviceArg::Cpu => tch::Device::Cpu,
        DeviceArg::Cuda if tch::Cuda::is_available() => tch::Device::Cuda(0),
        DeviceArg::Cuda => anyhow::bail!("--device cuda: no CUDA device is available"),
    })
}

/// Runs the command; returns how many images failed.
pub fn run(args: &ExplainArgs) -> anyhow::Result<usize> {
    let device = device_from(args.device)?;
    let placement = Placement {
        device,
        precision: args.precision,
        runtime: args.runtime,
    };
    let model = LoadedModel::load_on(&args.model, &args.models, placement)?;
    let images = list_images(&args.input)?;
    let window = args.window.unwrap_or(model.resize.default_window());
    let (target, maps) = parse_classes(&args.classes, &model)?;
    // Every method is checked before the first image is explained.
    let mut runs = Vec::new();
    for &method in &args.method {
        let choice = MethodChoice {
            kind: method,
            sampler: args.sampler,
            samples: args.samples,
            padding: args.padding,
            occlusion_value: args.occlusion_value,
        };
        let fill = methods::window_fill(&model, &choice, window)?;
        if method.one_class_per_run() && maps != MapClasses::Classes(Vec::new()) {
            anyhow::bail!(
                "gradient methods explain one class per run: use --classes predicted or one class"
            );
        }
        let params = ExplainParams {
            window,
            stride: args.stride,
            batch_size: args.batch_size.unwrap_or(default_batch_size(device)),
            tile_size: window,
            seed: args.seed,
            target,
            quantity: method.quantity(),
            maps: maps.clone(),
            schedule: Schedule::Plain,
            takeover: Default::default(),
            budget: args.budget,
        };
        methods::check_budget(method, args.budget)?;
        params.validate(
            model.classifier.input_shape(),
            model.classifier.num_classes(),
            fill.samples_per_window(),
        )?;
        runs.push((method, fill, params));
    }
    std::fs::create_dir_all(&args.out)?;

    let mut failed = 0;
    for path in &images {
        for (method, fill, params) in &runs {
            match explain_one(args, &model, *method, fill.as_ref(), params, path) {
                Ok(summary) => println!("{summary}"),
                Err(error) => {
                    // The method is named when several ran.
                    let method = match runs.len() {
                        1 => String::new(),
                        _ => format!(" ({})", method.name()),
                    };
                    eprintln!("{}{method}: {error:#}", path.display());
                    failed += 1;
                }
            }
        }
    }
    if failed > 0 {
        eprintln!(
            "{failed} of {} explanations failed",
            images.len() * runs.len()
        );
    }
    Ok(failed)
}

fn list_images(input: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if input.is_dir() {
        let images = crate::input::image_files(input)?;
        anyhow::ensure!(
            !images.is_empty(),
            "{} holds no PNG or JPEG images",
            input.display()
        );
        Ok(images)
    } else if input.exists() {
        Ok(vec![input.to_owned()])
    } else {
        anyhow::bail!("{} does not exist", input.display())
    }
}

/// `predicted`, `top-N`, or a comma-separated list of names or indices.
fn parse_classes(text: &str, model: &LoadedModel) -> anyhow::Result<(Target, MapClasses)> {
    if text == "predicted" {
        return Ok((Target::Predicted, MapClasses::Classes(Vec::new())));
    }
    if let Some(n) = text.strip_prefix("top-") {
        let n: usize = n
            .parse()
            .map_err(|_| anyhow::anyhow!("--classes {text}: expected top-N"))?;
        return Ok((Target::Predicted, MapClasses::Top(n)));
    }
    let mut classes = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let class = part
            .parse::<usize>()
            .ok()
            .filter(|&c| c < model.class_names.len())
            .or_else(|| model.class_by_name(part))
            .ok_or_else(|| {
                anyhow::anyhow!("--classes: {part:?} is not a class of {}", model.name)
            })?;
        classes.push(class);
    }
    let (first, rest) = classes
        .split_first()
        .ok_or_else(|| anyhow::anyhow!("--classes is empty"))?;
    Ok((Target::Class(*first), MapClasses::Classes(rest.to_vec())))
}

fn explain_one(
    args: &ExplainArgs,
    model: &LoadedModel,
    method: MethodKind,
    fill: &dyn WindowFill,
    params: &ExplainParams,
    path: &Path,
) -> anyhow::Result<serde_json::Value> {
    let bytes = std::fs::read(path)?;
    let image = model.input_from_bytes(&bytes)?;
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} windows, {eta} left")
            .expect("a valid template"),
    );
    bar.set_message(
        path.file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned(),
    );
    let mut on_progress = |progress: Progress| {
        match progress {
            Progress::Started { total_windows, .. } => bar.set_length(total_windows as u64),
            Progress::Batch { windows_done, .. } | Progress::Coarse { windows_done, .. } => {
                bar.set_position(windows_done as u64)
            }
            Progress::Windows(_) => {}
        }
        ControlFlow::Continue(())
    };
    let result = methods::run(model, method, fill, &image, params, &mut on_progress)?;
    bar.finish_and_clear();

    let stem = map_file_stem(path, method);
    let s = image.shape;
    let mut outputs = Vec::new();
    let mut faithfulness = Value::Null;
    for (class, map) in result.map_classes.iter().zip(&result.maps) {
        if *class == result.explained && !args.evaluate.is_empty() {
            faithfulness = evaluate::evaluate_map(
                model,
                &image,
                map,
                *class,
                &args.evaluate,
                &args.curves,
                params.seed,
                params.batch_size,
            )?;
        }
        let name = &model.class_names[*class];
        let slug: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        let base = args.out.join(format!("{stem}-{class}-{slug}"));
        let (npy, png) = (base.with_extension("npy"), base.with_extension("png"));
        npy::write_f32(&npy, map, s.height, s.width)?;
        overlay::render(&image, map).save(&png)?;
        outputs.push(json!({ "class": class, "name": name, "npy": npy, "png": png }));
    }
    // PDA's uncertainty: how much the S samples of the windows disagree.
    let spread = match &result.sample_spread {
        Some(spread) => {
            let path = args
                .out
                .join(format!("{stem}-{}-spread.npy", result.explained));
            npy::write_f32(&path, spread, s.height, s.width)?;
            Some(path)
        }
        None => None,
    };
    let mut ranked: Vec<usize> = (0..result.probabilities.len()).collect();
    ranked.sort_by(|&a, &b| result.probabilities[b].total_cmp(&result.probabilities[a]));
    let top: Vec<_> = ranked
        .iter()
        .take(5)
        .map(|&c| json!({ "class": c, "name": model.class_names[c], "probability": result.probabilities[c] }))
        .collect();
    Ok(json!({
        "image": path,
        "model": model.name,
        "method": method.name(),
        "runtime": model.computed_by(method.needs_gradients()),
        "parameters": {
            "window": params.window, "stride": params.stride, "padding": args.padding,
            "samples": fill.samples_per_window(), "seed": params.seed, "batch_size": params.batch_size,
            "budget": params.budget,
        },
        "predicted": result.predicted,
        "explained": result.explained,
        "top": top,
        "maps": outputs,
        "sample_spread": spread,
        "windows": result.windows,
        "windows_computed": result.windows_computed(),
        "windows_estimated": result.estimated_windows.len(),
        "forward_passes": result.forward_passes,
        "wall_seconds": result.wall_seconds,
        "faithfulness": faithfulness,
    }))
}

/// The options the research commands share: where the models and data
/// are, the device, the batch size and the seed.
#[derive(Args, Debug)]
pub struct RunOptions {
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Images per forward pass [default: 16 on a CPU, 256 on CUDA].
    #[arg(long)]
    pub batch_size: Option<usize>,
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
    #[arg(long, default_value = "models")]
    pub models: PathBuf,
    /// The data folder (the digits, the font of the figures).
    #[arg(long, default_value = "data")]
    pub data: PathBuf,
}

/// Writes a command's report as pretty JSON when asked to.
pub fn write_report(out: Option<&Path>, report: &impl serde::Serialize) -> anyhow::Result<()> {
    if let Some(out) = out {
        std::fs::write(out, serde_json::to_string_pretty(report)? + "\n")?;
        eprintln!("written to {}", out.display());
    }
    Ok(())
}

/// How `plain_map` explains: the engine's settings a comparison varies.
/// The start of the names of the files `explain --out` writes for `image`
/// and `method` ("chelsea-pda", then "-CLASS-NAME.npy"): they carry the
/// method, so runs of several methods sit side by side.
pub fn map_file_stem(image: &Path, method: MethodKind) -> String {
    format!(
        "{}-{}",
        image.file_stem().unwrap_or_default().to_string_lossy(),
        method.name()
    )
}

pub struct MapSetting {
    pub window: usize,
    pub stride: usize,
    /// S, for PDA and the sampled mean.
    pub samples: usize,
    pub batch_size: usize,
    pub seed: u64,
    pub target: Target,
}

/// The engine's parameters for a setting: plain schedule, only the target's map.
pub fn plain_params(setting: &MapSetting, quantity: crate::engine::Quantity) -> ExplainParams {
    ExplainParams {
        window: setting.window,
        stride: setting.stride,
        batch_size: setting.batch_size,
        tile_size: setting.window,
        seed: setting.seed,
        target: setting.target,
        quantity,
        maps: MapClasses::Classes(Vec::new()),
        schedule: Schedule::Plain,
        takeover: Default::default(),
        budget: 1.0,
    }
}

/// One method's explanation of `image` with the default sampler, padding
/// and occlusion grey, and no progress shown: the maps `agreement` and
/// `sanity` compare.
pub fn plain_map(
    model: &LoadedModel,
    kind: MethodKind,
    setting: &MapSetting,
    image: &crate::engine::InputImage,
) -> anyhow::Result<crate::engine::Explanation> {
    map_with(model, kind, setting, image, |_, _| {})
}

/// `plain_map` as the page asks for it: with the other classes' maps and
/// the coarse map first, as `serve` runs a request, computing `budget` of
/// the windows. What the defaults are timed with.
pub fn page_map(
    model: &LoadedModel,
    kind: MethodKind,
    setting: &MapSetting,
    budget: f64,
    image: &crate::engine::InputImage,
) -> anyhow::Result<crate::engine::Explanation> {
    let shape = model.classifier.input_shape();
    let classes = model.class_names.len();
    map_with(model, kind, setting, image, |params, samples_per_window| {
        params.budget = budget;
        params.maps = request::other_maps(kind, classes);
        params.schedule = request::schedule_for(params, shape, samples_per_window);
    })
}

fn map_with(
    model: &LoadedModel,
    kind: MethodKind,
    setting: &MapSetting,
    image: &crate::engine::InputImage,
    adjust: impl FnOnce(&mut ExplainParams, usize),
) -> anyhow::Result<crate::engine::Explanation> {
    let choice = MethodChoice {
        kind,
        sampler: SamplerKind::Auto,
        samples: setting.samples,
        padding: methods::DEFAULT_PADDING,
        occlusion_value: methods::DEFAULT_OCCLUSION_VALUE,
    };
    let fill = methods::window_fill(model, &choice, setting.window)?;
    let mut params = plain_params(setting, kind.quantity());
    adjust(&mut params, fill.samples_per_window());
    Ok(methods::run(
        model,
        kind,
        fill.as_ref(),
        image,
        &params,
        &mut |_| ControlFlow::Continue(()),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--method` takes exactly the names that reports and the measurements
    /// kept beside a model are written with, and every method has one.
    #[test]
    fn command_line_method_names_are_the_methods_own_names() {
        let parsed: Vec<MethodKind> = MethodKind::value_variants().to_vec();
        assert_eq!(parsed, MethodKind::ALL);
        for kind in MethodKind::ALL {
            assert_eq!(MethodKind::from_str(kind.name(), false), Ok(kind));
            assert_eq!(MethodKind::from_name(kind.name()), Some(kind));
        }
        assert_eq!(MethodKind::from_name("efficient_pda"), None);
    }
}
