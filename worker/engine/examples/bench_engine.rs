//! The engine against Captum, side by side in one run: the same photo, the
//! same TorchScript file (`models/efficientnet-lite0/model.pt`), the same
//! device. Captum's `Occlusion` runs in the project's Python (`./dev bench`
//! installs it); then our occlusion, efficient PDA, PDA and the gradient
//! method, at stride 8, and at stride 1 where a GPU is present. On a CPU the
//! window methods run again on ONNX Runtime (the folder's `model.onnx`, the
//! CPU's default runtime), with the agreement of their maps with libtorch's;
//! on a GPU again in half precision, with the agreement of their maps with
//! full precision.
//!
//! For each it prints the wall time, forward passes, passes per second, the
//! time per pass relative to Captum's (below 1: faster at identical work),
//! and the share of the wall time the network itself takes (the passes
//! times the network's own time per image on channels-last batches,
//! measured alone first; Captum hands the network contiguous batches, so
//! its share is against the slower contiguous time).
//!
//! cargo run --release --example bench_engine -- [PHOTO] [BATCH] [SAMPLES]
//! (`LENS_PYTHON` names the Python with Captum; default `.venv/bin/python`.)

use std::ops::ControlFlow;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use lens_engine::agreement;
use lens_engine::engine::{
    default_batch_size, explain, gradient_explain, random_batch, Classifier, ConditionalGaussian,
    ConditionalMean, ConditionalPda, ExplainParams, InputImage, MapClasses, Occlusion,
    PatchStatistics, Progress, Quantity, Schedule, Target, WindowFill,
};
use lens_engine::input::photo_from_bytes;
use lens_engine::models::{OnnxModel, Precision, TorchScriptModel};
use tch::{Device, Kind, Tensor};

const MODEL: &str = "models/efficientnet-lite0";
const WINDOW: usize = 10;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let photo = args
        .first()
        .map_or("data/photos/chelsea.png", String::as_str);
    let device = Device::cuda_if_available();
    let batch_size: usize = args
        .get(1)
        .map_or(Ok(default_batch_size(device)), |a| a.parse())?;
    let samples: usize = args.get(2).map_or(Ok(10), |a| a.parse())?;
    let folder = Path::new(MODEL);
    let model = TorchScriptModel::load(folder, device)?;
    // On CUDA the same file also runs in half precision, side by side.
    let half = if device.is_cuda() {
        Some(TorchScriptModel::load_with(
            folder,
            device,
            Precision::Half,
        )?)
    } else {
        None
    };
    // On a CPU the same network from the folder's ONNX file, side by side.
    let onnx = if device.is_cuda() {
        None
    } else {
        OnnxModel::load(folder, tch::get_num_threads().max(1) as usize)
            .inspect_err(|e| println!("ONNX Runtime does not run: {e}"))
            .ok()
    };
    let stats = PatchStatistics::load(&folder.join("patches-18.safetensors"))?;
    let gaussian = Arc::new(ConditionalGaussian::new(stats, WINDOW, (0.0, 1.0), 1e-4)?);
    let image = photo_from_bytes(&std::fs::read(photo)?, model.input_shape())?;
    println!(
        "{photo}, {device:?}, {} torch threads, k = {WINDOW}, l = 18, batch {batch_size}",
        tch::get_num_threads()
    );
    // The default batch size per device comes from this sweep.
    let sweep: &[usize] = if device.is_cuda() {
        &[64, 128, 256, 512, 1024]
    } else {
        &[8, 16, 32, 64]
    };
    for model in std::iter::once(&model).chain(&half) {
        for &batch in sweep {
            let seconds = network_seconds_per_image(model, batch, true)?;
            println!(
                "{:?} precision, batch {batch:>5}: the network alone {:.3} ms per image",
                model.precision(),
                seconds * 1e3
            );
        }
    }
    if let Some(onnx) = &onnx {
        for &batch in sweep {
            let seconds = network_seconds_per_image(onnx, batch, false)?;
            println!(
                "ONNX Runtime, batch {batch:>5}: the network alone {:.3} ms per image",
                seconds * 1e3
            );
        }
    }
    let strides: &[usize] = if device.is_cuda() { &[8, 1] } else { &[8] };
    // The first run builds the sampler's matrices for every border case the
    // finest stride meets (once per model, window and padding; on a GPU also
    // CUDA's lazy set-up); the table below times runs after that, as a
    // serving worker sees them.
    for model in std::iter::once(&model).chain(&half) {
        let finest = params_at(strides[strides.len() - 1], batch_size);
        let mean = ConditionalMean {
            gaussian: gaussian.clone(),
        };
        let first = explain(model, &image, &mean, &finest, &mut quiet)?;
        println!(
            "first run, {:?} precision (efficient PDA, stride {}): {:.3} s",
            model.precision(),
            finest.stride,
            first.wall_seconds
        );
    }
    let contiguous = network_seconds_per_image(&model, batch_size, false)?;
    let per_image = network_seconds_per_image(&model, batch_size, true)?;
    println!(
        "the network alone, per image: {:.2} ms channels-last (the engine's batches), \
         {:.2} ms contiguous",
        per_image * 1e3,
        contiguous * 1e3
    );
    // ONNX Runtime takes NCHW: the engine hands it a contiguous copy.
    let onnx_per_image = match &onnx {
        Some(onnx) => {
            let seconds = network_seconds_per_image(onnx, batch_size, false)?;
            println!(
                "the network alone on ONNX Runtime, per image: {:.2} ms",
                seconds * 1e3
            );
            seconds
        }
        None => f64::NAN,
    };

    for &stride in strides {
        let captum = run_captum(&image.values, stride, batch_size, device)
            .inspect_err(|e| println!("\nCaptum did not run: {e}"))
            .ok();
        println!("\nstride {stride}");
        println!(
            "{:<30} {:>9} {:>9} {:>10} {:>10} {:>9}",
            "method", "wall s", "passes", "passes/s", "vs Captum", "network"
        );
        let table = Table {
            // Without Captum the ratio column compares with nothing.
            captum_per_pass: captum.as_ref().map_or(f64::NAN, |c| c.0 / c.1 as f64),
            network_per_image: per_image,
        };
        if let Some((wall, passes, version)) = &captum {
            let contiguous_table = Table {
                network_per_image: contiguous,
                ..table
            };
            contiguous_table.row(&format!("Captum {version} Occlusion"), *wall, *passes);
        }
        let methods = Methods {
            image: &image,
            gaussian: &gaussian,
            samples,
            params: params_at(stride, batch_size),
            table,
        };
        let full_maps = methods.run(&model, "", true)?;
        if let Some(onnx) = &onnx {
            let onnx_maps = Methods {
                table: Table {
                    network_per_image: onnx_per_image,
                    ..table
                },
                ..methods.clone()
            }
            .run(onnx, ", ONNX Runtime", false)?;
            compare_maps("ONNX Runtime vs libtorch", &full_maps, &onnx_maps);
        }
        if let Some(half) = &half {
            let half_table = Table {
                network_per_image: network_seconds_per_image(half, batch_size, true)?,
                ..table
            };
            let half_maps = Methods {
                table: half_table,
                ..methods.clone()
            }
            .run(half, ", half", true)?;
            compare_maps("half vs full precision", &full_maps, &half_maps);
        }
    }
    Ok(())
}

/// How closely two runs' maps of the same methods agree.
fn compare_maps(what: &str, reference: &[(String, Vec<f32>)], other: &[(String, Vec<f32>)]) {
    for ((name, expected), (_, got)) in reference.iter().zip(other) {
        println!(
            "{what}, {name}: rank correlation {:.4}, top-10% overlap {:.3}, largest \
             difference {:.2e} (map range {:.3})",
            agreement::rank_correlation(expected, got),
            agreement::top_overlap(expected, got, 0.1),
            expected
                .iter()
                .zip(got)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max),
            range(expected)
        );
    }
}

/// Efficient PDA's settings (the other methods change the quantity or schedule).
fn params_at(stride: usize, batch_size: usize) -> ExplainParams {
    ExplainParams {
        window: WINDOW,
        stride,
        batch_size,
        tile_size: 28,
        seed: 0,
        target: Target::Predicted,
        quantity: Quantity::LogOdds,
        maps: MapClasses::Classes(Vec::new()),
        schedule: Schedule::Plain,
        takeover: Default::default(),
        budget: 1.0,
    }
}

/// Prints one method's figures.
#[derive(Clone, Copy)]
struct Table {
    captum_per_pass: f64,
    network_per_image: f64,
}

impl Table {
    fn row(&self, name: &str, wall: f64, passes: usize) {
        println!(
            "{name:<30} {wall:>9.3} {passes:>9} {:>10.1} {:>10.2} {:>8.0}%",
            passes as f64 / wall,
            wall / passes as f64 / self.captum_per_pass,
            100.0 * passes as f64 * self.network_per_image / wall
        );
    }
}

/// The methods timed at one stride.
#[derive(Clone)]
struct Methods<'a> {
    image: &'a InputImage,
    gaussian: &'a Arc<ConditionalGaussian>,
    samples: usize,
    params: ExplainParams,
    table: Table,
}

impl Methods<'_> {
    /// Times every method on `model` (the gradient method where it has
    /// `gradients`); returns the maps of occlusion, efficient PDA and PDA
    /// (named), for comparisons across runtimes and precisions.
    fn run(
        &self,
        model: &dyn Classifier,
        suffix: &str,
        gradients: bool,
    ) -> anyhow::Result<Vec<(String, Vec<f32>)>> {
        let params = &self.params;
        let (image, stride, samples) = (self.image, params.stride, self.samples);
        let mean = ConditionalMean {
            gaussian: self.gaussian.clone(),
        };
        let timed = |name: &str, fill: &dyn WindowFill, params: &ExplainParams| {
            let r = explain(model, image, fill, params, &mut quiet)?;
            self.table
                .row(&format!("{name}{suffix}"), r.wall_seconds, r.forward_passes);
            anyhow::Ok(r)
        };
        let occlusion = ExplainParams {
            quantity: Quantity::Probability,
            ..params.clone()
        };
        let occluded = timed("occlusion", &Occlusion { value: 0.5 }, &occlusion)?;
        let efficient = timed("efficient PDA", &mean, params)?;
        let mut maps = vec![
            ("occlusion".to_string(), occluded.map().to_vec()),
            ("efficient PDA".to_string(), efficient.map().to_vec()),
        ];
        // PDA at stride 1 on a CPU would take hours.
        if samples > 0 && (model.device().is_cuda() || stride > 1) {
            let pda = ConditionalPda {
                gaussian: self.gaussian.clone(),
                samples,
            };
            let name = format!("PDA (S = {samples})");
            let r = timed(&name, &pda, params)?;
            println!(
                "PDA / efficient PDA{suffix}: {:.2}",
                r.wall_seconds / efficient.wall_seconds
            );
            maps.push((name, r.map().to_vec()));
        }
        let attempts: &[&str] = match gradients {
            true => &["gradient (cold)", "gradient (warm)"],
            false => &[],
        };
        for attempt in attempts {
            let r = gradient_explain(model, image, &mean, params, &mut quiet)?;
            println!(
                "{:<30} {:>9.3} s",
                format!("{attempt}{suffix}"),
                r.wall_seconds
            );
        }
        // How soon the page gets a complete (coarse) map, where the stride
        // leaves windows to refine it.
        if stride < WINDOW / 2 {
            let coarse_to_fine = ExplainParams {
                schedule: Schedule::CoarseToFine,
                ..params.clone()
            };
            let start = Instant::now();
            let mut coarse_after = None;
            let r = explain(model, image, &mean, &coarse_to_fine, &mut |p| {
                if let Progress::Coarse { windows_done, .. } = p {
                    coarse_after = Some((start.elapsed().as_secs_f64(), windows_done));
                }
                ControlFlow::Continue(())
            })?;
            if let Some((seconds, windows)) = coarse_after {
                println!(
                    "coarse map{suffix} (efficient PDA, {windows} windows) after {seconds:.3} s \
                     of {:.3} s",
                    r.wall_seconds
                );
            }
        }
        Ok(maps)
    }
}

fn range(map: &[f32]) -> f32 {
    let (low, high) = map
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| {
            (l.min(v), h.max(v))
        });
    high - low
}

fn quiet(_: Progress) -> ControlFlow<()> {
    ControlFlow::Continue(())
}

/// The network's own time per image, the median over seven full batches
/// after a warm-up, with the batch laid out channels-last (as the engine builds
/// it) or contiguous (as a caller usually hands it over).
fn network_seconds_per_image(
    model: &dyn Classifier,
    batch: usize,
    channels_last: bool,
) -> anyhow::Result<f64> {
    let _guard = tch::no_grad_guard();
    let images = random_batch(model.input_shape(), batch, model.device(), channels_last);
    let wait = |t: Tensor| t.sum(Kind::Float).double_value(&[]);
    wait(model.logits(&images)?);
    // The median of several batches: the machine is shared and noisy.
    let mut seconds = Vec::new();
    for _ in 0..7 {
        let start = Instant::now();
        wait(model.logits(&images)?);
        seconds.push(start.elapsed().as_secs_f64());
    }
    seconds.sort_by(f64::total_cmp);
    Ok(seconds[seconds.len() / 2] / batch as f64)
}

/// Captum's occlusion (grey 0.5) on the same input: (wall s, passes, version).
fn run_captum(
    input: &[f32],
    stride: usize,
    batch: usize,
    device: Device,
) -> anyhow::Result<(f64, usize, String)> {
    let npy = std::env::temp_dir().join(format!("lens-bench-{}.npy", std::process::id()));
    std::fs::write(&npy, lens_proto::npy::f32_matrix(input, 3 * 224, 224))?;
    let python = std::env::var("LENS_PYTHON").unwrap_or(".venv/bin/python".into());
    let output = Command::new(python)
        .arg("scripts/bench_captum.py")
        .arg(Path::new(MODEL).join("model.pt"))
        .arg(&npy)
        .args([
            "3",
            &WINDOW.to_string(),
            &stride.to_string(),
            &batch.to_string(),
        ])
        .arg(if device.is_cuda() { "cuda" } else { "cpu" })
        .output()?;
    std::fs::remove_file(&npy)?;
    anyhow::ensure!(
        output.status.success(),
        "Captum failed (is it installed? ./dev bench installs it): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    Ok((
        result["wall_seconds"].as_f64().unwrap_or(f64::NAN),
        result["forward_passes"].as_u64().unwrap_or(0) as usize,
        result["captum"].as_str().unwrap_or("?").to_string(),
    ))
}
