//! Wall time of efficient PDA (conditional mean), PDA (conditional samples)
//! and the gradient method on one photo with a TorchScript model, k = 10,
//! l = 18, measured side by side in one run.
//!
//! cargo run --release --example bench_photo -- [PHOTO] [STRIDE] [SAMPLES] [BATCH]

use std::ops::ControlFlow;
use std::path::Path;

use lens_worker::engine::{
    explain, gradient_explain, Classifier, ConditionalGaussian, ConditionalMean, ConditionalPda,
    ExplainParams, MapClasses, PatchStatistics, Quantity, Target,
};
use lens_worker::input::photo_from_bytes;
use lens_worker::models::TorchScriptModel;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let photo = args
        .first()
        .map_or("data/photos/chelsea.png", String::as_str);
    let stride: usize = args.get(1).map_or(Ok(4), |a| a.parse())?;
    let samples: usize = args.get(2).map_or(Ok(10), |a| a.parse())?;
    let batch_size: usize = args.get(3).map_or(Ok(64), |a| a.parse())?;
    let device = tch::Device::cuda_if_available();
    let folder = Path::new("models/efficientnet-lite0");
    let model = TorchScriptModel::load(folder, device)?;
    let stats = PatchStatistics::load(&folder.join("patches-18.safetensors"))?;
    let gaussian = std::sync::Arc::new(ConditionalGaussian::new(stats, 10, (0.0, 1.0), 1e-4)?);
    let image = photo_from_bytes(&std::fs::read(photo)?, model.input_shape())?;
    let params = ExplainParams {
        window: 10,
        stride,
        batch_size,
        tile_size: 28,
        seed: 0,
        target: Target::Predicted,
        quantity: Quantity::LogOdds,
        maps: MapClasses::Top(5),
    };
    println!("{photo}, device {device:?}, {} torch threads, k = 10, l = 18, stride {stride}, batch {batch_size}", tch::get_num_threads());
    let quiet = &mut |_: lens_worker::engine::Progress| ControlFlow::Continue(());
    let gradient = gradient_explain(
        &model,
        &image,
        &ConditionalMean {
            gaussian: gaussian.clone(),
        },
        &params,
        quiet,
    )?;
    println!(
        "gradient:      {:>9.2} s  {:>7} passes",
        gradient.wall_seconds, gradient.forward_passes
    );
    let efficient = explain(
        &model,
        &image,
        &ConditionalMean {
            gaussian: gaussian.clone(),
        },
        &params,
        quiet,
    )?;
    println!(
        "efficient PDA: {:>9.2} s  {:>7} passes",
        efficient.wall_seconds, efficient.forward_passes
    );
    if samples > 0 {
        let pda = explain(
            &model,
            &image,
            &ConditionalPda {
                gaussian: gaussian.clone(),
                samples,
            },
            &params,
            quiet,
        )?;
        println!(
            "PDA (S = {samples}):  {:>9.2} s  {:>7} passes",
            pda.wall_seconds, pda.forward_passes
        );
        println!(
            "ratios: PDA / efficient {:.1}, efficient / gradient {:.1}",
            pda.wall_seconds / efficient.wall_seconds,
            efficient.wall_seconds / gradient.wall_seconds
        );
    }
    println!(
        "explained class {} ({})",
        efficient.explained,
        model.class_names()[efficient.explained]
    );
    Ok(())
}
