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
//! With a budget below 1, `refine.rs` chooses which windows are computed
//! and estimates the others from them; the map is assembled the same way.
//!
//! Determinism: each window's random draws come from a stream keyed by
//! (seed, window position) (`draws.rs`), and each window's evidence lands in
//! its own cell of the grid (`grid.rs`), so neither batches, tiles nor the
//! order of windows change a map.

use std::ops::ControlFlow;
use std::time::Instant;

use tch::{Device, Kind, Tensor};

use super::classifier::{logits_of, Classifier, InputImage, InputShape};
use super::device::host_f32;
use super::error::EngineError;
use super::evidence::{Laplace, Quantity};
use super::fill::WindowFill;
use super::grid::EvidenceGrid;
use super::perturb::DeviceInput;
use super::progress::{Progress, WindowResults};
use super::refine::{refine, Refinement};
use super::window_run::{
    restore_cells, sample_weights, ClassOutputs, RunResults, TileRelease, WindowRun,
};
use super::windows::{tile_rects, Schedule, TileSchedule};

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
    /// The order windows are computed in (never changes the map).
    pub schedule: Schedule,
    /// For a run another worker may take over.
    pub takeover: Takeover,
    /// The share of the windows to compute, in (0, 1]: below 1 the rest
    /// are estimated from their computed neighbours (`refine.rs`).
    pub budget: f64,
}

/// For runs that another worker may take over (hosted with several
/// workers): each batch's window results are reported as they are made,
/// and a run taken over starts after the windows reported before.
#[derive(Clone, Debug, Default)]
pub struct Takeover {
    /// Report each batch's results (`Progress::Windows`).
    pub report: bool,
    /// The results of the schedule's first windows, computed before.
    pub done: Option<std::sync::Arc<WindowResults>>,
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
        if !(self.budget > 0.0 && self.budget <= 1.0) {
            return Err(EngineError::BadBudget {
                budget: self.budget,
            });
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
    /// Per window position (row-major over the window grid: positions along
    /// y, then along x), P(explained class) with that window replaced (the
    /// mean over its samples); empty for gradient methods.
    pub window_probabilities: Vec<f32>,
    pub windows: usize,
    /// With a budget below 1: the windows (grid cells, as in
    /// `window_probabilities`) whose values were estimated from their
    /// neighbours instead of computed, in increasing order.
    pub estimated_windows: Vec<usize>,
    pub forward_passes: usize,
    pub wall_seconds: f64,
}

impl Explanation {
    /// The map of the explained class.
    pub fn map(&self) -> &[f32] {
        &self.maps[0]
    }

    /// The windows computed (all of them, unless a budget left some to be
    /// estimated).
    pub fn windows_computed(&self) -> usize {
        self.windows - self.estimated_windows.len()
    }
}

/// Runs one explanation. `on_progress` may stop it by returning `Break`
/// (checked after every batch), which ends it with `EngineError::Cancelled`.
///
/// Everything per window happens on the model's device: the batch is built
/// there (`perturb`), the fill draws there (`fill`), the outputs are reduced
/// there to one evidence value per window and class (`grid`). The host only
/// orders the windows, uploads their positions and random draws, and copies
/// back finished tiles.
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
    let device = model.device();
    let input = DeviceInput::new(image, params.window, device);
    let laplace = Laplace {
        training_images: model.training_images(),
        classes: model.num_classes(),
    };

    let original_logits = logits_of(model, &input.batch_of_one())?;
    let probabilities = host_f32(&original_logits.f_softmax(-1, Kind::Float)?)?;
    let (predicted, explained) = params.target.resolve(&probabilities);
    let map_classes = map_classes(&params.maps, explained, &probabilities);
    let class_index =
        Tensor::from_slice(&map_classes.iter().map(|&c| c as i64).collect::<Vec<_>>())
            .to_device(device);
    let quantity = params.quantity;
    let outputs = ClassOutputs {
        laplace,
        quantity,
        classes: &class_index,
        weights: sample_weights(fill, device)?,
    };
    // value(c | x) of every mapped class, `[1, M]`.
    let p_x = outputs.probabilities(&original_logits)?;
    let value_x = outputs.value(&original_logits, &p_x, 1, 1)?;

    let (height, width) = (shape.height, shape.width);
    let grid = EvidenceGrid::new(height, width, params.window, params.stride, device);
    let total = grid.cells();
    let mut run = WindowRun {
        model,
        fill,
        input: &input,
        outputs: &outputs,
        value_x: &value_x,
        grid: &grid,
        windows_per_batch: (params.batch_size / samples).max(1),
        seed: params.seed,
        report: params.takeover.report,
        results: RunResults::new(map_classes.len(), total, samples, device),
        forward_passes: 1,
    };
    let estimated = if params.budget < 1.0 {
        let refinement = Refinement::new(
            grid.rows(),
            grid.columns(),
            params.window,
            params.stride,
            params.budget,
        );
        announce(
            on_progress,
            &probabilities,
            predicted,
            explained,
            refinement.target(),
        )?;
        let tiles = tile_rects(height, width, params.tile_size);
        refine(
            &mut run,
            &refinement,
            params.takeover.done.as_deref(),
            &tiles,
            on_progress,
        )?
    } else {
        let schedule = TileSchedule::new(
            height,
            width,
            params.window,
            params.stride,
            params.tile_size,
            params.schedule,
        );
        announce(on_progress, &probabilities, predicted, explained, total)?;
        every_window(
            &mut run,
            &schedule,
            params.takeover.done.as_deref(),
            on_progress,
        )?;
        Vec::new()
    };
    let forward_passes = run.forward_passes;
    let RunResults {
        evidence,
        without,
        spread,
    } = run.results;

    let maps = (0..map_classes.len() as i64)
        .map(|m| host_f32(&grid.per_pixel_mean(&evidence.get(m))))
        .collect::<Result<_, _>>()?;
    let sample_spread = match spread {
        Some(spread) => Some(host_f32(&grid.per_pixel_mean(&spread))?),
        None => None,
    };
    Ok(Explanation {
        probabilities,
        predicted,
        explained,
        map_classes,
        maps,
        sample_spread,
        window_probabilities: host_f32(&without)?,
        windows: total,
        estimated_windows: estimated,
        forward_passes,
        wall_seconds: started_at.elapsed().as_secs_f64(),
    })
}

/// Every window of the grid, in the schedule's order, with the coarse map
/// and each tile reported as soon as it is final.
fn every_window(
    run: &mut WindowRun,
    schedule: &TileSchedule,
    done: Option<&WindowResults>,
    on_progress: &mut dyn FnMut(Progress) -> ControlFlow<()>,
) -> Result<(), EngineError> {
    let total = schedule.windows.len();
    let (grid, width) = (run.grid, run.input.shape.width);
    let restored = restore(done, schedule, grid, &mut run.results, run.input.device)?;
    let mut release = TileRelease::new(&schedule.tiles);
    let mut final_tiles = |windows_done: usize, evidence: &Tensor| {
        release.final_after(windows_done, grid, width, evidence)
    };
    // Batches as an uninterrupted run makes them, from the first window
    // not restored.
    let remaining = &schedule.windows[restored..];
    let windows_per_batch = run.windows_per_batch;
    for (batch_index, batch) in remaining.chunks(windows_per_batch).enumerate() {
        run.compute(batch, on_progress)?;
        let evidence = &run.results.evidence;
        let windows_done = restored + batch_index * windows_per_batch + batch.len();
        let coarse_now =
            windows_done - batch.len() < schedule.coarse && windows_done >= schedule.coarse;
        if coarse_now && schedule.coarse < total {
            let coarse = Progress::Coarse {
                values: host_f32(&grid.coarse_mean(&evidence.get(0)))?,
                windows_done,
                total_windows: total,
            };
            if on_progress(coarse).is_break() {
                return Err(EngineError::Cancelled);
            }
        }
        let progress = Progress::Batch {
            tiles: final_tiles(windows_done, evidence)?,
            windows_done,
            total_windows: total,
        };
        if on_progress(progress).is_break() {
            return Err(EngineError::Cancelled);
        }
    }
    if remaining.is_empty() {
        // Every window was restored: its tiles still go out.
        let progress = Progress::Batch {
            tiles: final_tiles(total, &run.results.evidence)?,
            windows_done: total,
            total_windows: total,
        };
        if on_progress(progress).is_break() {
            return Err(EngineError::Cancelled);
        }
    }
    Ok(())
}

/// Puts the results of windows computed before into the run's results;
/// how many of the schedule's first windows they cover. Results that are
/// not the schedule's first windows for this run are left out (0): the run
/// then computes everything, with the same map.
fn restore(
    done: Option<&WindowResults>,
    schedule: &TileSchedule,
    grid: &EvidenceGrid,
    results: &mut RunResults,
    device: Device,
) -> Result<usize, EngineError> {
    let Some(done) = done else {
        return Ok(0);
    };
    let n = done.cells.len();
    let in_order = n <= schedule.windows.len()
        && schedule.windows[..n]
            .iter()
            .zip(&done.cells)
            .all(|(w, &cell)| grid.cell_of(w) as i64 == cell);
    if !in_order || !restore_cells(done, results, device)? {
        return Ok(0);
    }
    Ok(n)
}

/// P(c | x) of the image alone, on the host.
pub fn probabilities_of(
    model: &dyn Classifier,
    image: &InputImage,
) -> Result<Vec<f32>, EngineError> {
    let _no_grad = tch::no_grad_guard();
    let input = DeviceInput::new(image, 1, model.device());
    let logits = logits_of(model, &input.batch_of_one())?;
    host_f32(&logits.f_softmax(-1, Kind::Float)?)
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

fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best
}
