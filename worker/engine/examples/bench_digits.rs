//! Wall time of efficient PDA against PDA (S = 10) on held-out digits, k = 4,
//! stride 1, measured side by side (alternating, several rounds) in one run,
//! on the serving default runtime (ONNX Runtime on a CPU), with the share
//! of the wall time the network alone takes (its own time per image at the
//! same batch, measured first), and then on libtorch.
//!
//!     cargo run --release --example bench_digits [-- ROUNDS]

use std::ops::ControlFlow;
use std::path::Path;

use std::time::Instant;

use lens_engine::digits::{DigitsKit, SHAPE};
use lens_engine::engine::{
    explain, random_batch, Classifier, EfficientPda, ExplainParams, InputImage, MapClasses, Pda,
    Quantity, Schedule, Target, WindowFill,
};
use lens_engine::models::{LoadedModel, DIGITS};

fn main() -> anyhow::Result<()> {
    let rounds: usize = std::env::args().nth(1).map_or(Ok(5), |a| a.parse())?;
    let device = tch::Device::cuda_if_available();
    let kit = DigitsKit::load(Path::new("models"), Path::new("data"), device)?;
    let torch = LoadedModel::load(DIGITS, Path::new("models"), device, Default::default())?;
    for (name, classifier) in [
        (kit.model.computed_by(false), kit.classifier()),
        (torch.computed_by(false), torch.classifier.as_ref()),
    ] {
        println!("\n{name}");
        compare(&kit, classifier, rounds, device)?;
    }
    Ok(())
}

/// Efficient PDA against PDA on each preset digit, on `classifier`.
fn compare(
    kit: &DigitsKit,
    classifier: &dyn Classifier,
    rounds: usize,
    device: tch::Device,
) -> anyhow::Result<()> {
    let params = ExplainParams {
        window: 4,
        stride: 1,
        batch_size: 64,
        tile_size: 7,
        seed: 0,
        target: Target::Predicted,
        quantity: Quantity::LogOdds,
        maps: MapClasses::All,
        schedule: Schedule::Plain,
        takeover: Default::default(),
        budget: 1.0,
    };
    let pda = Pda {
        sampler: kit.sampler(),
        samples: 10,
    };
    let efficient = EfficientPda {
        sampler: kit.sampler(),
    };
    println!(
        "device {device:?}, {} torch threads, k = 4, stride 1, batch 64, {rounds} rounds per digit",
        tch::get_num_threads()
    );
    let per_image = network_seconds_per_image(classifier, params.batch_size)?;
    println!(
        "the network alone: {:.1} us per image at batch {}",
        per_image * 1e6,
        params.batch_size
    );
    println!("digit  efficient_s  pda_s  ratio  passes(eff/pda)  network share (eff/pda)");
    let mut ratios = Vec::new();
    for (label, values) in &kit.presets {
        let image = InputImage {
            shape: SHAPE,
            values: values.clone(),
        };
        let time = |fill: &dyn WindowFill| -> anyhow::Result<(f64, usize)> {
            let r = explain(classifier, &image, fill, &params, &mut |_| {
                ControlFlow::Continue(())
            })?;
            Ok((r.wall_seconds, r.forward_passes))
        };
        let (mut eff_times, mut pda_times) = (Vec::new(), Vec::new());
        let (mut eff_passes, mut pda_passes) = (0, 0);
        for _ in 0..rounds {
            let (t, n) = time(&efficient)?;
            eff_times.push(t);
            eff_passes = n;
            let (t, n) = time(&pda)?;
            pda_times.push(t);
            pda_passes = n;
        }
        let (e, p) = (median(&mut eff_times), median(&mut pda_times));
        ratios.push(p / e);
        let share = |passes: usize, seconds: f64| 100.0 * passes as f64 * per_image / seconds;
        println!(
            "{label:>5}  {e:>11.3}  {p:>5.3}  {:>5.1}  {eff_passes}/{pda_passes}  {:>5.0}% / {:.0}%",
            p / e,
            share(eff_passes, e),
            share(pda_passes, p)
        );
    }
    println!("median ratio PDA / efficient: {:.1}", median(&mut ratios));
    Ok(())
}

/// The network's own time per image: the median of seven batches of
/// `batch` random digits after a warm-up.
fn network_seconds_per_image(classifier: &dyn Classifier, batch: usize) -> anyhow::Result<f64> {
    let _guard = tch::no_grad_guard();
    let images = random_batch(classifier.input_shape(), batch, classifier.device(), false);
    let _warm_up = classifier.logits(&images)?;
    let mut seconds: Vec<f64> = (0..7)
        .map(|_| {
            let start = Instant::now();
            classifier
                .logits(&images)
                .map(|_| start.elapsed().as_secs_f64())
        })
        .collect::<Result<_, _>>()?;
    Ok(median(&mut seconds) / batch as f64)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}
