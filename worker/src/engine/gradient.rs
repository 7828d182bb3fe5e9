//! Algorithm 3 of the paper: the gradient simplification of efficient PDA.
//! One forward and one backward pass give g = d value(c | x) / dx; the
//! evidence of window w is the first-order estimate of value(x) - value(x'),
//!
//! ```text
//! WE_w = sum over the window's pixels and channels of g * (x - x')
//! ```
//!
//! with x' the same replacement efficient PDA would use (the window's mean
//! from the `fill`). As for the window methods, the map is the per-pixel mean
//! over the windows that contain the pixel. For a network that is linear in
//! its logits and `Quantity::Logit`, this equals efficient PDA exactly.

use std::ops::ControlFlow;
use std::time::Instant;

use tch::{Kind, Tensor};

use super::classifier::{Classifier, InputImage, InputShape};
use super::error::EngineError;
use super::evidence::{Laplace, Quantity};
use super::explain::{
    announce, check_request, window_rng, ExplainParams, Explanation, MapTile, Progress,
};
use super::fill::WindowFill;
use super::sampler::read_window;
use super::windows::{add_over_window, coverage, per_pixel_mean, TileSchedule};

/// Runs Algorithm 3 for the explained class. `fill` must not depend on its
/// random stream (a mean, not a sample).
pub fn gradient_explain(
    model: &dyn Classifier,
    image: &InputImage,
    fill: &dyn WindowFill,
    params: &ExplainParams,
    on_progress: &mut dyn FnMut(Progress) -> ControlFlow<()>,
) -> Result<Explanation, EngineError> {
    let started_at = Instant::now();
    let shape = check_request(model, image, params, 1)?;
    super::explain::check_fixed_window(fill, params.window)?;
    let InputGradient {
        probabilities,
        predicted,
        explained,
        gradient,
    } = input_gradient(model, image, params)?;

    let schedule = TileSchedule::new(
        shape.height,
        shape.width,
        params.window,
        params.stride,
        params.tile_size,
    );
    let total = schedule.windows.len();
    announce(on_progress, &probabilities, predicted, explained, total)?;

    let counts = coverage(shape.height, shape.width, &schedule.windows);
    let mut sum = vec![0f64; shape.pixels()];
    let window_values = shape.channels * params.window * params.window;
    let (mut replacement, mut original, mut grad) = (
        vec![0f32; window_values],
        vec![0f32; window_values],
        vec![0f32; window_values],
    );
    for (index, &window) in schedule.windows.iter().enumerate() {
        let mut rng = window_rng(params.seed, index);
        fill.fill(image, window, &mut rng, &mut replacement);
        read_window(&image.values, shape, window, &mut original);
        read_window(&gradient, shape, window, &mut grad);
        let evidence: f64 = grad
            .iter()
            .zip(original.iter().zip(&replacement))
            .map(|(g, (x, r))| *g as f64 * (*x as f64 - *r as f64))
            .sum();
        add_over_window(&mut sum, shape.width, &window, evidence);
    }
    let map = per_pixel_mean(&sum, &counts);
    let prediction = (probabilities, predicted, explained);
    finish_one_pass(
        prediction,
        map,
        &schedule,
        shape.width,
        total,
        started_at,
        on_progress,
    )
}

/// What one forward and one backward pass give.
pub(crate) struct InputGradient {
    pub probabilities: Vec<f32>,
    pub predicted: usize,
    pub explained: usize,
    /// d quantity(explained class) / dx, laid out like the input.
    pub gradient: Vec<f32>,
}

/// The gradient of `params.quantity` of the explained class with respect to
/// the input pixels.
pub(crate) fn input_gradient(
    model: &dyn Classifier,
    image: &InputImage,
    params: &ExplainParams,
) -> Result<InputGradient, EngineError> {
    let shape = model.input_shape();
    let laplace = Laplace {
        training_images: model.training_images(),
        classes: model.num_classes(),
    };
    let x = Tensor::from_slice(&image.values)
        .view([
            1,
            shape.channels as i64,
            shape.height as i64,
            shape.width as i64,
        ])
        .to_device(model.device())
        .set_requires_grad(true);
    let logits = model.logits(&x).to_kind(Kind::Float);
    let probabilities_t = logits.softmax(-1, Kind::Float);
    let probabilities = Vec::<f32>::try_from(
        probabilities_t
            .detach()
            .to_device(tch::Device::Cpu)
            .view([-1]),
    )?;
    let (predicted, explained) = params.target.resolve(&probabilities);
    let class = explained as i64;
    let value = match params.quantity {
        Quantity::Logit => logits.get(0).get(class),
        Quantity::Probability => probabilities_t.get(0).get(class),
        Quantity::LogOdds => {
            let n = laplace.training_images as f64;
            let p = probabilities_t.get(0).get(class);
            let q: Tensor = (p * n + 1.0) / (n + laplace.classes as f64);
            let odds: Tensor = &q / (q.ones_like() - &q);
            odds.log2()
        }
    };
    value.backward();
    let gradient = Vec::<f32>::try_from(x.grad().to_device(tch::Device::Cpu).view([-1]))?;

    Ok(InputGradient {
        probabilities,
        predicted,
        explained,
        gradient,
    })
}

/// Streams a map computed in one pass (all tiles in one batch) and returns
/// it as the map of the explained class. `prediction` is (probabilities,
/// predicted, explained).
pub(crate) fn finish_one_pass(
    prediction: (Vec<f32>, usize, usize),
    map: Vec<f32>,
    schedule: &TileSchedule,
    width: usize,
    windows: usize,
    started_at: Instant,
    on_progress: &mut dyn FnMut(Progress) -> ControlFlow<()>,
) -> Result<Explanation, EngineError> {
    emit_whole_map(&map, schedule, width, on_progress)?;
    let (probabilities, predicted, explained) = prediction;
    Ok(Explanation {
        probabilities,
        predicted,
        explained,
        map_classes: vec![explained],
        maps: vec![map],
        sample_spread: None,
        windows,
        forward_passes: 1,
        wall_seconds: started_at.elapsed().as_secs_f64(),
    })
}

/// The ending of a per-pixel map computed in one pass (saliency, Grad-CAM):
/// announce it over a schedule of 1 x 1 windows, then stream and return it.
pub(crate) fn finish_pixel_map(
    prediction: (Vec<f32>, usize, usize),
    map: Vec<f32>,
    shape: InputShape,
    tile_size: usize,
    started_at: Instant,
    on_progress: &mut dyn FnMut(Progress) -> ControlFlow<()>,
) -> Result<Explanation, EngineError> {
    let schedule = TileSchedule::new(shape.height, shape.width, 1, 1, tile_size);
    let (probabilities, predicted, explained) = &prediction;
    announce(
        on_progress,
        probabilities,
        *predicted,
        *explained,
        schedule.windows.len(),
    )?;
    finish_one_pass(
        prediction,
        map,
        &schedule,
        shape.width,
        shape.pixels(),
        started_at,
        on_progress,
    )
}

/// Sends a map computed all at once as the schedule's tiles, in one batch.
fn emit_whole_map(
    map: &[f32],
    schedule: &TileSchedule,
    width: usize,
    on_progress: &mut dyn FnMut(Progress) -> ControlFlow<()>,
) -> Result<(), EngineError> {
    let total = schedule.windows.len();
    let tiles = schedule
        .tiles
        .iter()
        .map(|(rect, _)| MapTile {
            rect: *rect,
            values: (rect.y..rect.y + rect.height)
                .flat_map(|row| {
                    map[row * width + rect.x..row * width + rect.x + rect.width].to_vec()
                })
                .collect(),
        })
        .collect();
    if on_progress(Progress::Batch {
        tiles,
        windows_done: total,
        total_windows: total,
    })
    .is_break()
    {
        return Err(EngineError::Cancelled);
    }
    Ok(())
}
