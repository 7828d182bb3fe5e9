//! Wall time of efficient PDA against PDA (S = 10) on held-out digits, k = 4,
//! stride 1, measured side by side (alternating, several rounds) in one run.
//!
//!     cargo run --release --example bench_digits [-- ROUNDS]

use std::ops::ControlFlow;
use std::path::Path;

use lens_engine::digits::{DigitsKit, SHAPE};
use lens_engine::engine::{
    explain, EfficientPda, ExplainParams, InputImage, MapClasses, Pda, Quantity, Schedule, Target,
    WindowFill,
};

fn main() -> anyhow::Result<()> {
    let rounds: usize = std::env::args().nth(1).map_or(Ok(5), |a| a.parse())?;
    let device = tch::Device::cuda_if_available();
    let kit = DigitsKit::load(Path::new("models"), Path::new("data"), device)?;
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
    println!("digit  efficient_s  pda_s  ratio  passes(eff/pda)");
    let mut ratios = Vec::new();
    for (label, values) in &kit.presets {
        let image = InputImage {
            shape: SHAPE,
            values: values.clone(),
        };
        let time = |fill: &dyn WindowFill| -> anyhow::Result<(f64, usize)> {
            let r = explain(kit.classifier(), &image, fill, &params, &mut |_| {
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
        println!(
            "{label:>5}  {e:>11.3}  {p:>5.3}  {:>5.1}  {eff_passes}/{pda_passes}",
            p / e
        );
    }
    println!("median ratio PDA / efficient: {:.1}", median(&mut ratios));
    Ok(())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}
