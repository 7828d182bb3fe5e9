//! The one loop behind every window method: perturb -> batch -> forward ->
//! average over samples -> weight of evidence -> per-pixel mean.
//!
//! For each window w (see `windows.rs` for positions and the border), S
//! perturbed copies of the image are made by the method's [`WindowFill`], run
//! through the classifier in batches of `batch_size` images, and
//! P(c | x \ x_w) = mean over the S probabilities (Algorithm 1 line 9). The
//! weight of evidence of w is added to every pixel of w, and the map is the sum
//! divided by the number of windows that contain the pixel (lines 11-14).
//! Maps for every class of `map_classes` come from the same forward passes.
//!
//! Determinism: the random stream of each window is seeded from (seed, window
//! index), so a map does not depend on how windows fall into batches.

use std::ops::ControlFlow;
use std::time::Instant;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{Kind, Tensor};

use super::classifier::{Classifier, InputImage, InputShape};
use super::error::EngineError;
use super::evidence::{Laplace, Quantity};
use super::fill::WindowFill;
use super::sampler::{read_window, write_window};
use super::windows::{add_over_window, coverage, per_pixel_mean, Rect, TileSchedule};

/// Largest S and batch accepted, so one request cannot exhaust memory.
pub const MAX_SAMPLES: usize = 1000;
pub const MAX_BATCH: usize = 4096;

/// Which classes get a map besides the explained one (which comes first);
/// they cost no extra forward passes, only accumulation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MapClasses {
    All,
    /// The n most probable classes.
    Top(usize),
    Classes(Vec<usize>),
}

/// Which class the map explains.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Predicted,
    Class(usize),
}

impl Target {
    /// The predicted class (the most probable) and the class to explain.
    pub fn resolve(self, probabilities: &[f32]) -> (usize, usize) {
        let predicted = argmax(probabilities);
        match self {
            Target::Predicted => (predicted, predicted),
            Target::Class(c) => (predicted, c),
        }
    }
}

#[derive(Clone, Debug)]
pub struct ExplainParams {
    pub window: usize,
    pub stride: usize,
    pub batch_size: usize,
    pub tile_size: usize,
    pub seed: u64,
    pub target: Target,
    /// What each window's evidence measures (default: log2 odds).
    pub quantity: Quantity,
    pub maps: MapClasses,
}

impl ExplainParams {
    /// Checks the parameters against a model's input shape and class count,
    /// before any work starts.
    pub fn validate(
        &self,
        shape: InputShape,
        classes: usize,
        samples: usize,
    ) -> Result<(), EngineError> {
        let (window, stride) = (self.window, self.stride);
        if window == 0 {
            return Err(EngineError::EmptyWindow);
        }
        if window > shape.height || window > shape.width {
            return Err(EngineError::WindowTooLarge {
                window,
                width: shape.width,
                height: shape.height,
            });
        }
        if stride == 0 || stride > window {
            return Err(EngineError::BadStride { stride, window });
        }
        if samples == 0 {
            return Err(EngineError::NoSamples);
        }
        if samples > MAX_SAMPLES {
            return Err(EngineError::TooManySamples {
                samples,
                max: MAX_SAMPLES,
            });
        }
        if self.batch_size == 0 || self.batch_size > MAX_BATCH {
            return Err(EngineError::BadBatchSize {
                batch_size: self.batch_size,
                max: MAX_BATCH,
            });
        }
        if self.tile_size == 0 {
            return Err(EngineError::EmptyTile);
        }
        if let MapClasses::Classes(list) = &self.maps {
            if let Some(&class) = list.iter().find(|&&c| c >= classes) {
                return Err(EngineError::NoSuchClass { class, classes });
            }
        }
        if let Target::Class(class) = self.target {
            if class >= classes {
                return Err(EngineError::NoSuchClass { class, classes });
            }
        }
        Ok(())
    }
}

/// What the loop reports while it runs.
#[derive(Debug)]
pub enum Progress<'a> {
    /// Before any window: the unperturbed prediction.
    Started {
        probabilities: &'a [f32],
        predicted: usize,
        explained: usize,
        total_windows: usize,
    },
    /// After each batch: the tiles that became final in it (maybe none).
    Batch {
        tiles: Vec<MapTile>,
        windows_done: usize,
        total_windows: usize,
    },
}

/// Final evidence values of the explained class over one rectangle.
#[derive(Clone, Debug, PartialEq)]
pub struct MapTile {
    pub rect: Rect,
    /// Row-major, `rect.width * rect.height`.
    pub values: Vec<f32>,
}

#[derive(Debug)]
pub struct Explanation {
    pub probabilities: Vec<f32>,
    pub predicted: usize,
    pub explained: usize,
    /// Classes with a map, the explained one first.
    pub map_classes: Vec<usize>,
    /// One `height x width` map per class of `map_classes`, row-major.
    pub maps: Vec<Vec<f32>>,
    /// With S > 1 samples per window: per pixel, the mean over its windows of
    /// the standard deviation of P(explained class) across the S samples;
    /// where it is large, the map's estimate is uncertain.
    pub sample_spread: Option<Vec<f32>>,
    pub windows: usize,
    pub forward_passes: usize,
    pub wall_seconds: f64,
}

impl Explanation {
    /// The map of the explained class.
    pub fn map(&self) -> &[f32] {
        &self.maps[0]
    }
}

/// Runs one explanation. `on_progress` may stop it by returning `Break`
/// (checked after every batch), which ends it with `EngineError::Cancelled`.
pub fn explain(
    model: &dyn Classifier,
    image: &InputImage,
    fill: &dyn WindowFill,
    params: &ExplainParams,
    on_progress: &mut dyn FnMut(Progress) -> ControlFlow<()>,
) -> Result<Explanation, EngineError> {
    let started_at = Instant::now();
    let samples = fill.samples_per_window();
    let shape = check_request(model, image, params, samples)?;
    check_fixed_window(fill, params.window)?;
    let _no_grad = tch::no_grad_guard();
    let laplace = Laplace {
        training_images: model.training_images(),
        classes: model.num_classes(),
    };

    let original = forward(model, &image.values, 1)?;
    let probabilities = original.probabilities;
    let (predicted, explained) = params.target.resolve(&probabilities);
    let map_classes = map_classes(&params.maps, explained, &probabilities);
    let quantity = params.quantity;
    let value_x: Vec<f64> = map_classes
        .iter()
        .map(|&c| quantity.value(&laplace, probabilities[c] as f64, original.logits[c] as f64))
        .collect();

    let (height, width) = (shape.height, shape.width);
    let schedule = TileSchedule::new(
        height,
        width,
        params.window,
        params.stride,
        params.tile_size,
    );
    let total = schedule.windows.len();
    let counts = coverage(height, width, &schedule.windows);
    announce(on_progress, &probabilities, predicted, explained, total)?;

    let mut sums = vec![vec![0f64; height * width]; map_classes.len()];
    // How much the S samples of a window disagree (PDA only).
    let mut spread_sums = (samples > 1).then(|| vec![0f64; height * width]);
    let windows_per_batch = (params.batch_size / samples).max(1);
    let mut next_tile = 0;
    let mut forward_passes = 1;
    let mut perturbed = image.clone();
    let mut replacement = vec![0f32; shape.channels * params.window * params.window];
    let mut original = replacement.clone();
    for (batch_index, batch) in schedule.windows.chunks(windows_per_batch).enumerate() {
        let first_window = batch_index * windows_per_batch;
        let mut values = Vec::with_capacity(batch.len() * samples * shape.values());
        for (offset, &window) in batch.iter().enumerate() {
            let mut rng = window_rng(params.seed, first_window + offset);
            for _ in 0..samples {
                fill.fill(image, window, &mut rng, &mut replacement);
                write_window(&mut perturbed, window, &replacement);
                values.extend_from_slice(&perturbed.values);
            }
            // Put the original pixels back for the next window.
            read_window(&image.values, shape, window, &mut original);
            write_window(&mut perturbed, window, &original);
        }
        let outputs = forward(model, &values, batch.len() * samples)?;
        forward_passes += batch.len() * samples;

        let classes = model.num_classes();
        let mean_over_samples = |all: &[f32], offset: usize, class: usize| {
            all[offset * samples * classes..(offset + 1) * samples * classes]
                .chunks_exact(classes)
                .map(|row| row[class] as f64)
                .sum::<f64>()
                / samples as f64
        };
        for (offset, window) in batch.iter().enumerate() {
            for (m, &class) in map_classes.iter().enumerate() {
                // Marginalising averages probabilities (Algorithm 1 line 9);
                // the logit quantity averages logits.
                let p = mean_over_samples(&outputs.probabilities, offset, class);
                let z = if quantity == Quantity::Logit {
                    mean_over_samples(&outputs.logits, offset, class)
                } else {
                    0.0
                };
                let evidence = value_x[m] - quantity.value(&laplace, p, z);
                add_over_window(&mut sums[m], width, window, evidence);
            }
            if let Some(spread) = spread_sums.as_mut() {
                let rows = &outputs.probabilities
                    [offset * samples * classes..(offset + 1) * samples * classes];
                let p = rows.chunks_exact(classes).map(|r| r[explained] as f64);
                add_over_window(spread, width, window, standard_deviation(p, samples));
            }
        }

        let windows_done = first_window + batch.len();
        let mut tiles = Vec::new();
        while next_tile < schedule.tiles.len() && schedule.tiles[next_tile].1 <= windows_done {
            let rect = schedule.tiles[next_tile].0;
            tiles.push(MapTile {
                rect,
                values: mean_over_rect(&sums[0], &counts, width, rect),
            });
            next_tile += 1;
        }
        let progress = Progress::Batch {
            tiles,
            windows_done,
            total_windows: total,
        };
        if on_progress(progress).is_break() {
            return Err(EngineError::Cancelled);
        }
    }

    Ok(Explanation {
        probabilities,
        predicted,
        explained,
        map_classes,
        maps: sums
            .iter()
            .map(|sum| per_pixel_mean(sum, &counts))
            .collect(),
        sample_spread: spread_sums.map(|spread| per_pixel_mean(&spread, &counts)),
        windows: total,
        forward_passes,
        wall_seconds: started_at.elapsed().as_secs_f64(),
    })
}

/// Standard deviation (n - 1 in the denominator) of `n` values.
fn standard_deviation(values: impl Iterator<Item = f64> + Clone, n: usize) -> f64 {
    let mean = values.clone().sum::<f64>() / n as f64;
    let squares: f64 = values.map(|v| (v - mean) * (v - mean)).sum();
    (squares / (n as f64 - 1.0)).sqrt()
}

/// Sends `Progress::Started`; a `Break` from the caller cancels the run.
pub(crate) fn announce(
    on_progress: &mut dyn FnMut(Progress) -> ControlFlow<()>,
    probabilities: &[f32],
    predicted: usize,
    explained: usize,
    total_windows: usize,
) -> Result<(), EngineError> {
    let started = Progress::Started {
        probabilities,
        predicted,
        explained,
        total_windows,
    };
    match on_progress(started) {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(()) => Err(EngineError::Cancelled),
    }
}

/// Validates the parameters and the image against the model (every method
/// starts here); returns the model's input shape.
pub(crate) fn check_request(
    model: &dyn Classifier,
    image: &InputImage,
    params: &ExplainParams,
    samples: usize,
) -> Result<InputShape, EngineError> {
    let shape = model.input_shape();
    params.validate(shape, model.num_classes(), samples)?;
    if image.shape != shape {
        return Err(EngineError::ShapeMismatch {
            got: image.shape,
            expected: shape,
        });
    }
    Ok(shape)
}

/// The explained class first, then the others `maps` asks for.
pub(crate) fn map_classes(
    maps: &MapClasses,
    explained: usize,
    probabilities: &[f32],
) -> Vec<usize> {
    let others: Vec<usize> = match maps {
        MapClasses::All => (0..probabilities.len()).collect(),
        MapClasses::Top(n) => {
            let mut ranked: Vec<usize> = (0..probabilities.len()).collect();
            ranked.sort_by(|&a, &b| probabilities[b].total_cmp(&probabilities[a]));
            ranked.truncate(*n);
            ranked
        }
        MapClasses::Classes(list) => list.clone(),
    };
    let mut classes = vec![explained];
    for c in others {
        if !classes.contains(&c) {
            classes.push(c);
        }
    }
    classes
}

/// Refuses a window size the fill was not made for.
pub(crate) fn check_fixed_window(fill: &dyn WindowFill, window: usize) -> Result<(), EngineError> {
    match fill.fixed_window() {
        Some(fitted) if fitted != window => Err(EngineError::WindowMismatch { window, fitted }),
        _ => Ok(()),
    }
}

/// The random stream of one window: independent of batching and of the
/// other windows.
pub(crate) fn window_rng(seed: u64, window_index: usize) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(window_index as u64);
    rng
}

/// Probabilities and logits of a batch, `count x K` each, on the host.
struct Outputs {
    probabilities: Vec<f32>,
    logits: Vec<f32>,
}

/// Runs `count` images (back to back in `values`) through the model.
fn forward(model: &dyn Classifier, values: &[f32], count: usize) -> Result<Outputs, EngineError> {
    let s = model.input_shape();
    let batch = Tensor::from_slice(values)
        .view([
            count as i64,
            s.channels as i64,
            s.height as i64,
            s.width as i64,
        ])
        .to_device(model.device());
    let logits = model.logits(&batch).to_kind(Kind::Float);
    let probabilities = logits.softmax(-1, Kind::Float);
    let to_host = |t: Tensor| -> Result<Vec<f32>, EngineError> {
        Ok(Vec::<f32>::try_from(
            t.to_device(tch::Device::Cpu).contiguous().view([-1]),
        )?)
    };
    Ok(Outputs {
        probabilities: to_host(probabilities)?,
        logits: to_host(logits)?,
    })
}

fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best
}

fn mean_over_rect(sum: &[f64], counts: &[u32], width: usize, rect: Rect) -> Vec<f32> {
    let mut values = Vec::with_capacity(rect.width * rect.height);
    for row in rect.y..rect.y + rect.height {
        for i in row * width + rect.x..row * width + rect.x + rect.width {
            values.push((sum[i] / counts[i] as f64) as f32);
        }
    }
    values
}
