//! The paper's Table 1 (one batch through each network) and Fig. 12 (time
//! to explain one image, PDA against efficient PDA), measured on the device
//! the command runs on: the engine's own timings, at several strides, so the
//! figure shows how both grow with the number of windows.

use std::time::Instant;

use plotters::chart::SeriesLabelPosition;
use serde_json::json;
use tch::Device;

use super::plot::{save, Chart, Series};
use super::{write_json, FiguresArgs};
use lens_engine::engine::{default_batch_size, random_batch, Target};
use lens_engine::methods::MethodKind;
use lens_engine::models::{LoadedModel, Precision};
use lens_worker::cli::named_images;
use lens_worker::cli::{plain_map, MapSetting};

/// Batches timed for Table 1, after one untimed batch.
const TIMED_BATCHES: u32 = 5;

/// Seconds for one batch of random inputs through the network.
fn batch_seconds(model: &LoadedModel, batch_size: usize, device: Device) -> anyhow::Result<f64> {
    let shape = model.classifier.input_shape();
    let batch = random_batch(shape, batch_size, device, false);
    let _guard = tch::no_grad_guard();
    // Reading a value back waits for the device to finish.
    let run = || -> anyhow::Result<()> {
        let sum = model.classifier.logits(&batch)?.sum(tch::Kind::Float);
        let _ = sum.double_value(&[]);
        Ok(())
    };
    run()?;
    let start = Instant::now();
    for _ in 0..TIMED_BATCHES {
        run()?;
    }
    Ok(start.elapsed().as_secs_f64() / f64::from(TIMED_BATCHES))
}

/// The window and the strides timed per model: the digits at the paper's
/// window 4, photos at window 10 (strides no larger than the window).
fn windows_of(model: &str, strides: &[usize]) -> (usize, Vec<usize>) {
    if model == lens_engine::models::DIGITS {
        (4, vec![1, 2, 4])
    } else {
        (10, strides.to_vec())
    }
}

pub(super) fn figure_12(args: &FiguresArgs, device: Device) -> anyhow::Result<()> {
    let batch_size = args.run.batch_size.unwrap_or(default_batch_size(device));
    let (mut table, mut timings, mut series) = (Vec::new(), Vec::new(), Vec::new());
    for name in &args.timing_models {
        let model = LoadedModel::load(name, &args.run.models, device, Precision::Full)?;
        let batch = batch_seconds(&model, batch_size, device)?;
        table.push(json!({"model": model.name, "batch_size": batch_size, "seconds": batch}));
        println!(
            "Table 1: {}: one batch of {batch_size} in {:.4} s",
            model.name, batch
        );
        let (_, image) = named_images(&model, None, 1, &args.run.data)?
            .into_iter()
            .next()
            .ok_or_else(|| anyhow::anyhow!("no image to time {name} on"))?;
        let (window, strides) = windows_of(name, &args.timing_strides);
        let setting = |stride, samples| MapSetting {
            window,
            stride,
            samples,
            batch_size,
            seed: args.run.seed,
            target: Target::Predicted,
        };
        // A first map builds the sampler's matrices (kept by the model, per
        // window) and lets the network specialise to the batch: not timed.
        let first = strides.first().copied().unwrap_or(window);
        plain_map(&model, MethodKind::EfficientPda, &setting(first, 1), &image)?;
        for (kind, label, samples) in [
            (MethodKind::Pda, "PDA", args.map_samples),
            (MethodKind::EfficientPda, "efficient PDA", 1),
        ] {
            let mut points = Vec::new();
            for &stride in &strides {
                let start = Instant::now();
                let explanation = plain_map(&model, kind, &setting(stride, samples), &image)?;
                let seconds = start.elapsed().as_secs_f64();
                let windows = explanation.windows;
                eprintln!(
                    "Fig. 12: {}, {label}, stride {stride}: {seconds:.2} s",
                    model.name
                );
                timings.push(json!({
                    "model": model.name, "method": label, "samples": samples, "window": window,
                    "stride": stride, "windows": windows,
                    "forward_passes": explanation.forward_passes, "seconds": seconds,
                }));
                points.push((windows as f64, seconds));
            }
            series.push(Series {
                name: format!("{}: {label}", model.name),
                points,
                points_only: false,
            });
        }
    }
    let device_name = format!("{device:?}");
    let title = format!("Time to explain one image ({device_name}, batch {batch_size})");
    save(
        &Chart {
            title: &title,
            x_label: "windows per image",
            y_label: "seconds per image",
            log_x: true,
            log_y: true,
            series,
            legend: SeriesLabelPosition::UpperLeft,
        },
        &args.out.join("fig12-time-per-image"),
    )?;
    write_json(
        &args.out.join("fig12-time-per-image.json"),
        &json!({"device": device_name, "pda_samples": args.map_samples,
                "table1": table, "fig12": timings}),
    )?;
    println!("Fig. 12: {}", serde_json::to_string(&timings)?);
    Ok(())
}
