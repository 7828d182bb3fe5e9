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

use super::classifier::{logits_of, Classifier, InputImage, InputShape};
use super::device::host_f32;
use super::error::EngineError;
use super::evidence::{Laplace, Quantity};
use super::explain::{announce, check_request, ExplainParams, Explanation};
use super::fill::WindowFill;
use super::grid::EvidenceGrid;
use super::perturb::DeviceInput;
use super::progress::{MapTile, Progress};
use super::windows::{Schedule, TileSchedule};

/// Fill values computed at once by the gradient method (windows x values
/// per window), to bound its memory: the conditional mean gathers each
/// window's ring (about twice the window) as f64 with i64 indices, several
/// copies at once. 2^22 values peaked at 0.65 GB on EfficientNet-Lite0 at
/// stride 1; 2^18 at 0.1 GB, and was 2.3x faster on two CPU cores
/// (0.6 s against 1.4 s a map: the blocks stay in cache).
const FILL_VALUES_AT_ONCE: usize = 1 << 18;

/// Runs Algorithm 3 for the explained class. `fill` must not depend on its
/// random stream (a mean, not a sample). After the one backward pass, the
/// per-window sums run on the model's device in bulk: each window's fill
/// and its pixels' gradient gathered by index, one dot product per window,
/// and the per-pixel mean from the evidence grid.
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
    let device = model.device();
    let input = DeviceInput::new(image, params.window, device);
    let InputGradient {
        probabilities,
        predicted,
        explained,
        gradient,
    } = input_gradient(model, &input, params)?;

    let schedule = TileSchedule::new(
        shape.height,
        shape.width,
        params.window,
        params.stride,
        params.tile_size,
        Schedule::Plain,
    );
    let total = schedule.windows.len();
    announce(on_progress, &probabilities, predicted, explained, total)?;

    let _no_grad = tch::no_grad_guard();
    let grid = EvidenceGrid::new(
        shape.height,
        shape.width,
        params.window,
        params.stride,
        device,
    );
    let mut evidence = Tensor::zeros([grid.cells() as i64], (Kind::Double, device));
    let chunk = (FILL_VALUES_AT_ONCE / input.window_values()).max(1);
    for windows in schedule.windows.chunks(chunk) {
        let replacement = fill
            .fill_batch(&input, windows, params.seed)?
            .f_to_kind(Kind::Double)?;
        let targets = input.targets(windows);
        let original = input.values.f_take(&targets)?.f_to_kind(Kind::Double)?;
        let g = gradient.f_take(&targets)?.f_to_kind(Kind::Double)?;
        let window_evidence = (g * (original - replacement)).f_sum_dim_intlist(
            [1i64].as_slice(),
            false,
            Kind::Double,
        )?;
        let cells = grid.cell_indices(windows, device);
        let _ = evidence.f_index_copy_(0, &cells, &window_evidence)?;
    }
    let map = host_f32(&grid.per_pixel_mean(&evidence))?;
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
    /// d quantity(explained class) / dx, flat like the input, on its device.
    pub gradient: Tensor,
}

/// The gradient of `params.quantity` of the explained class with respect to
/// the input pixels.
pub(crate) fn input_gradient(
    model: &dyn Classifier,
    input: &DeviceInput,
    params: &ExplainParams,
) -> Result<InputGradient, EngineError> {
    let laplace = Laplace {
        training_images: model.training_images(),
        classes: model.num_classes(),
    };
    let x = input.image().detach().set_requires_grad(true);
    let logits = logits_of(model, &x)?;
    let probabilities_t = logits.f_softmax(-1, Kind::Float)?;
    let probabilities = host_f32(&probabilities_t.detach())?;
    let (predicted, explained) = params.target.resolve(&probabilities);
    let class = explained as i64;
    let value = match params.quantity {
        Quantity::Logit => logits.get(0).get(class),
        Quantity::Probability => probabilities_t.get(0).get(class),
        Quantity::LogOdds => laplace.log2_odds_tensor(&probabilities_t.get(0).get(class)),
    };
    value.f_backward()?;
    let gradient = x.grad().f_view([-1])?;
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
        window_probabilities: Vec::new(),
        windows,
        estimated_windows: Vec::new(),
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
    let schedule = TileSchedule::new(shape.height, shape.width, 1, 1, tile_size, Schedule::Plain);
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
