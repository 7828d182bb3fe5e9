//! The figures about sampling: how far the (conditional) mean's one pass is
//! from the mean over many samples (Figs. 11 and 16), and the maps the two
//! give on ten digits (Fig. 13).

use std::path::Path;

use plotters::chart::SeriesLabelPosition;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use tch::{Device, Kind, Tensor};

use super::grid::{titled, Row};
use super::plot::{save, Chart, Series};
use super::{write_json, FiguresArgs, PHOTO_MODEL};
use lens_engine::agreement::rank_correlation;
use lens_engine::digits::held_out_presets;
use lens_engine::engine::{
    default_batch_size, probabilities_of, DeviceInput, InputImage, Target, Window, WindowFill,
};
use lens_engine::methods::{self, MethodChoice, MethodKind, SamplerKind};
use lens_engine::models::{LoadedModel, Precision, DIGITS};
use lens_worker::cli::named_images;
use lens_worker::cli::overlay;
use lens_worker::cli::{plain_map, MapSetting};

/// P(c) of one image at one window: with the window at its (conditional)
/// mean, and with each of `samples` draws from the sampler; c is the class
/// the model predicts for the image.
struct WindowDraws {
    at_mean: f64,
    sampled: Vec<f64>,
}

impl WindowDraws {
    fn sampled_mean(&self) -> f64 {
        self.sampled.iter().sum::<f64>() / self.sampled.len() as f64
    }
    /// The standard error of the sampled mean.
    fn standard_error(&self) -> f64 {
        let n = self.sampled.len() as f64;
        let mean = self.sampled_mean();
        let variance = self.sampled.iter().map(|p| (p - mean).powi(2)).sum::<f64>() / (n - 1.0);
        (variance / n).sqrt()
    }
}

fn draws_at(
    model: &LoadedModel,
    image: &InputImage,
    window: Window,
    samples: usize,
    seed: u64,
    batch_size: usize,
) -> anyhow::Result<WindowDraws> {
    let classifier = model.classifier.as_ref();
    let class = Target::Predicted
        .resolve(&probabilities_of(classifier, image)?)
        .0;
    let choice = |kind| MethodChoice {
        kind,
        sampler: SamplerKind::Auto,
        samples,
        padding: methods::DEFAULT_PADDING,
        occlusion_value: methods::DEFAULT_OCCLUSION_VALUE,
    };
    let _no_grad = tch::no_grad_guard();
    let input = DeviceInput::new(image, window.size, classifier.device());
    let p_of = |fill: &dyn WindowFill| -> anyhow::Result<Vec<f64>> {
        let count = fill.samples_per_window();
        let images =
            input.perturbed(&[window], count, &fill.fill_batch(&input, &[window], seed)?)?;
        let mut p = Vec::with_capacity(count);
        for start in (0..count).step_by(batch_size) {
            let part = images.narrow(0, start as i64, (count - start).min(batch_size) as i64);
            let probabilities = classifier.probabilities(&part)?;
            p.extend(Vec::<f64>::try_from(
                probabilities.select(1, class as i64).to_kind(Kind::Double),
            )?);
        }
        Ok(p)
    };
    let mean_fill = methods::window_fill(model, &choice(MethodKind::EfficientPda), window.size)?;
    let sample_fill = methods::window_fill(model, &choice(MethodKind::Pda), window.size)?;
    Ok(WindowDraws {
        at_mean: p_of(mean_fill.as_ref())?[0],
        sampled: p_of(sample_fill.as_ref())?,
    })
}

/// The window of side `k` in the middle of the image.
fn centre_window(image: &InputImage, k: usize) -> Window {
    Window {
        x: (image.shape.width - k) / 2,
        y: (image.shape.height - k) / 2,
        size: k,
    }
}

/// Up to `count` variants of the shipped photos: each photo's 192 x 192
/// crops at the centre and the four corners, as they are and flipped left
/// to right, scaled back to the model's input.
fn photo_variants(
    model: &LoadedModel,
    count: usize,
    data: &Path,
) -> anyhow::Result<Vec<(String, InputImage)>> {
    let photos = named_images(model, None, usize::MAX, data)?;
    let mut variants = Vec::new();
    for (name, photo) in &photos {
        let s = photo.shape;
        let (side, margin) = (192i64, (s.width.min(s.height) as i64 - 192).max(0));
        let whole = Tensor::from_slice(&photo.values).view([
            1,
            s.channels as i64,
            s.height as i64,
            s.width as i64,
        ]);
        let corners = [
            (margin / 2, margin / 2),
            (0, 0),
            (margin, 0),
            (0, margin),
            (margin, margin),
        ];
        for flip in [false, true] {
            for &(x, y) in &corners {
                let crop = whole.narrow(2, y, side.min(s.height as i64)).narrow(
                    3,
                    x,
                    side.min(s.width as i64),
                );
                let crop = if flip { crop.flip([3]) } else { crop };
                let scaled =
                    crop.upsample_bilinear2d([s.height as i64, s.width as i64], false, None, None);
                variants.push((
                    format!(
                        "{name} crop ({x}, {y}){}",
                        if flip { " flipped" } else { "" }
                    ),
                    InputImage {
                        shape: s,
                        values: Vec::<f32>::try_from(scaled.flatten(0, -1))?,
                    },
                ));
            }
        }
    }
    // Round robin over the photos, so a small count still spans them all.
    let per_photo = 10;
    let mut order: Vec<usize> = (0..variants.len()).collect();
    order.sort_by_key(|&i| (i % per_photo, i / per_photo));
    Ok(order
        .into_iter()
        .take(count)
        .map(|i| variants[i].clone())
        .collect())
}

/// Fig. 11.
pub(super) fn figure_11(args: &FiguresArgs, device: Device) -> anyhow::Result<()> {
    let batch = args.run.batch_size.unwrap_or(default_batch_size(device));
    let digits = LoadedModel::load(DIGITS, &args.run.models, device, Precision::Full)?;
    let split = lens_engine::digits::mnist::load_split(
        &args.run.data.join(lens_engine::digits::MNIST_FILE),
    )?;
    let mut rows = Vec::new();
    for index in 0..args.digits.min(split.held_out.len()) {
        let image = InputImage {
            shape: digits.classifier.input_shape(),
            values: split.held_out.image(index).to_vec(),
        };
        let window = centre_window(&image, 4);
        let draws = draws_at(
            &digits,
            &image,
            window,
            args.samples,
            args.run.seed + index as u64,
            batch,
        )?;
        rows.push(("digits", format!("held-out digit {index}"), draws));
    }
    if args.photo_variants > 0 {
        let photos = LoadedModel::load(PHOTO_MODEL, &args.run.models, device, Precision::Full)?;
        let samples = args.photo_samples.unwrap_or(args.samples);
        for (index, (name, image)) in photo_variants(&photos, args.photo_variants, &args.run.data)?
            .into_iter()
            .enumerate()
        {
            eprintln!("Fig. 11: {name}");
            let window = centre_window(&image, 10);
            let draws = draws_at(
                &photos,
                &image,
                window,
                samples,
                args.run.seed + index as u64,
                batch,
            )?;
            rows.push(("photos", name, draws));
        }
    }
    let mut series = Vec::new();
    let mut summary = Vec::new();
    for set in ["digits", "photos"] {
        let mut errors: Vec<(f64, f64)> = rows
            .iter()
            .filter(|(s, _, _)| *s == set)
            .map(|(_, _, d)| ((d.at_mean - d.sampled_mean()).abs(), d.standard_error()))
            .collect();
        if errors.is_empty() {
            continue;
        }
        errors.sort_by(|a, b| a.0.total_cmp(&b.0));
        let n = errors.len() as f64;
        let at = |i: usize| (i as f64 + 0.5) / n;
        let floor = 1e-6;
        series.push(Series {
            name: format!("{set}: |P(mean) - mean P| ({} images)", errors.len()),
            points: errors
                .iter()
                .enumerate()
                .map(|(i, e)| (at(i), e.0.max(floor)))
                .collect(),
            points_only: false,
        });
        let mut standard: Vec<f64> = errors.iter().map(|e| e.1).collect();
        standard.sort_by(f64::total_cmp);
        series.push(Series {
            name: format!("{set}: standard error of mean P"),
            points: standard
                .iter()
                .enumerate()
                .map(|(i, e)| (at(i), e.max(floor)))
                .collect(),
            points_only: false,
        });
        let quantile = |q: f64| errors[((n - 1.0) * q).round() as usize].0;
        summary.push(json!({
            "set": set,
            "images": errors.len(),
            "median_error": quantile(0.5),
            "p90_error": quantile(0.9),
            "largest_error": quantile(1.0),
            "median_standard_error": standard[standard.len() / 2],
        }));
    }
    let chart = Chart {
        title: "Fig. 11: one pass at the mean against the mean of many samples",
        x_label: "images, by error (fraction)",
        y_label: "|difference in P(c)|",
        log_x: false,
        log_y: true,
        series,
        legend: SeriesLabelPosition::UpperLeft,
    };
    save(&chart, &args.out.join("fig11-mean-vs-samples"))?;
    let data = json!({
        "samples": args.samples,
        "photo_samples": args.photo_samples.unwrap_or(args.samples),
        "summary": summary,
        "images": rows.iter().map(|(set, name, d)| json!({
            "set": set, "image": name, "p_at_mean": d.at_mean,
            "mean_p": d.sampled_mean(), "standard_error": d.standard_error(),
        })).collect::<Vec<_>>(),
    });
    write_json(&args.out.join("fig11-mean-vs-samples.json"), &data)?;
    println!("Fig. 11: {}", serde_json::to_string(&summary)?);
    Ok(())
}

/// Fig. 16: error of the mean of S samples (over random subsets of the
/// draws) against S, and the conditional mean's error, at one window of a
/// digit and of a photo.
pub(super) fn figure_16(args: &FiguresArgs, device: Device) -> anyhow::Result<()> {
    let batch = args.run.batch_size.unwrap_or(default_batch_size(device));
    let digits = LoadedModel::load(DIGITS, &args.run.models, device, Precision::Full)?;
    let digit = held_out_presets(&args.run.data)?
        .into_iter()
        .find(|(label, _)| *label == 8)
        .map(|(_, values)| InputImage {
            shape: digits.classifier.input_shape(),
            values,
        })
        .ok_or_else(|| anyhow::anyhow!("no held-out 8"))?;
    let mut cases = vec![(
        "digit 8",
        draws_at(
            &digits,
            &digit,
            centre_window(&digit, 4),
            args.samples,
            args.run.seed,
            batch,
        )?,
    )];
    let photos = LoadedModel::load(PHOTO_MODEL, &args.run.models, device, Precision::Full)?;
    if let Some((name, photo)) = named_images(&photos, None, usize::MAX, &args.run.data)?
        .into_iter()
        .find(|(name, _)| name.starts_with("chelsea"))
    {
        let samples = args.photo_samples.unwrap_or(args.samples);
        eprintln!("Fig. 16: {name}");
        cases.push((
            "chelsea",
            draws_at(
                &photos,
                &photo,
                centre_window(&photo, 10),
                samples,
                args.run.seed,
                batch,
            )?,
        ));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(args.run.seed);
    let mut series = Vec::new();
    let mut summary = Vec::new();
    for (name, draws) in &cases {
        let all = draws.sampled_mean();
        let counts: Vec<usize> = [1, 2, 3, 5, 8, 13, 20, 32, 50, 80, 128]
            .into_iter()
            .filter(|&s| s * 4 <= draws.sampled.len())
            .collect();
        let mut shuffled = draws.sampled.clone();
        let curve: Vec<(f64, f64)> = counts
            .iter()
            .map(|&s| {
                let error = (0..200)
                    .map(|_| {
                        shuffled.shuffle(&mut rng);
                        (shuffled[..s].iter().sum::<f64>() / s as f64 - all).abs()
                    })
                    .sum::<f64>()
                    / 200.0;
                (s as f64, error.max(1e-6))
            })
            .collect();
        let mean_error = (draws.at_mean - all).abs().max(1e-6);
        let crossing = curve.iter().find(|(_, e)| *e < mean_error).map(|(s, _)| *s);
        summary.push(json!({"case": name, "conditional_mean_error": mean_error, "samples_to_beat_it": crossing}));
        series.push(Series {
            name: format!("{name}: mean of S samples"),
            points: curve.clone(),
            points_only: false,
        });
        series.push(Series {
            name: format!("{name}: one pass at the mean"),
            points: vec![
                (counts[0] as f64, mean_error),
                (*counts.last().unwrap_or(&1) as f64, mean_error),
            ],
            points_only: false,
        });
    }
    let chart = Chart {
        title: "Fig. 16: error against the mean of all draws, at one window",
        x_label: "samples S",
        y_label: "|P estimate - P from all draws|",
        log_x: true,
        log_y: true,
        series,
        legend: SeriesLabelPosition::MiddleRight,
    };
    save(&chart, &args.out.join("fig16-error-vs-samples"))?;
    write_json(
        &args.out.join("fig16-error-vs-samples.json"),
        &json!({"samples": args.samples, "photo_samples": args.photo_samples.unwrap_or(args.samples), "summary": summary}),
    )?;
    println!("Fig. 16: {}", serde_json::to_string(&summary)?);
    Ok(())
}

/// Fig. 13: the ten held-out presets, PDA (S = 10) beside efficient PDA.
pub(super) fn figure_13(args: &FiguresArgs, device: Device) -> anyhow::Result<()> {
    let digits = LoadedModel::load(DIGITS, &args.run.models, device, Precision::Full)?;
    let setting = |samples| MapSetting {
        window: 4,
        stride: 1,
        samples,
        batch_size: args.run.batch_size.unwrap_or(default_batch_size(device)),
        seed: args.run.seed,
        target: Target::Predicted,
    };
    let mut rows = Vec::new();
    let mut agreement = Vec::new();
    for (label, values) in held_out_presets(&args.run.data)? {
        let image = InputImage {
            shape: digits.classifier.input_shape(),
            values,
        };
        let pda = plain_map(&digits, MethodKind::Pda, &setting(10), &image)?;
        let ours = plain_map(&digits, MethodKind::EfficientPda, &setting(1), &image)?;
        agreement.push(
            json!({"digit": label, "rank_correlation": rank_correlation(pda.map(), ours.map())}),
        );
        rows.push(Row {
            label: format!("digit {label}"),
            tiles: vec![
                overlay::render(&image, pda.map()),
                overlay::render(&image, ours.map()),
            ],
        });
    }
    titled(&["PDA, S = 10", "efficient PDA"], &rows)?
        .save(args.out.join("fig13-digits-pda-and-ours.png"))?;
    write_json(
        &args.out.join("fig13-digits-pda-and-ours.json"),
        &json!({"columns": ["PDA, S = 10", "efficient PDA"], "window": 4, "digits": agreement}),
    )?;
    println!("Fig. 13: {}", serde_json::to_string(&agreement)?);
    Ok(())
}
