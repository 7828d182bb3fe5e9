//! What one window of a run fed the network, for the page's "look inside a
//! window": the replacements the fill put there, P(class) with each, their
//! average and the window's evidence. The run's batch that held the window
//! is computed again (the same windows, the same draws keyed by seed and
//! window, the same shape), so every number is the one the map was made
//! from (bit for bit, for a run that was not taken over mid-way).

use tch::{Kind, Tensor};

use super::classifier::{logits_of, Classifier, InputImage};
use super::device::{host_f32, host_f64};
use super::error::EngineError;
use super::evidence::Laplace;
use super::explain::{check_fixed_window, check_request, ExplainParams};
use super::fill::WindowFill;
use super::perturb::DeviceInput;
use super::window_run::{sample_weights, BatchOutcome, ClassOutputs};
use super::windows::{TileSchedule, Window};

#[derive(Clone, Debug, PartialEq)]
pub struct WindowInspection {
    pub window: Window,
    pub explained: usize,
    /// The S replacements of the window, `[S, C, k, k]` row-major.
    pub replacements: Vec<f32>,
    /// P(explained class | image).
    pub p_with: f64,
    /// P(explained class) with each replacement.
    pub p_samples: Vec<f64>,
    /// Their average, as the run made it (weighted where the fill weighs).
    pub p_without: f64,
    /// The window's evidence: the value of the image minus that of the
    /// replaced images (bits of log2 odds, or the probability's drop).
    pub evidence: f64,
    /// The Laplace correction the log odds used.
    pub laplace: Laplace,
}

/// Recomputes the window whose top-left corner is (`x`, `y`) as the run
/// with these parameters did.
pub fn inspect_window(
    model: &dyn Classifier,
    image: &InputImage,
    fill: &dyn WindowFill,
    params: &ExplainParams,
    (x, y): (usize, usize),
) -> Result<WindowInspection, EngineError> {
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
    let (_, explained) = params.target.resolve(&probabilities);
    let class_index = Tensor::from_slice(&[explained as i64]).to_device(device);
    let outputs = ClassOutputs {
        laplace,
        quantity: params.quantity,
        classes: &class_index,
        weights: sample_weights(fill, device)?,
    };
    let p_x = outputs.probabilities(&original_logits)?;
    let value_x = outputs.value(&original_logits, &p_x, 1, 1)?;

    // The batch the run computed this window in.
    let schedule = TileSchedule::new(
        shape.height,
        shape.width,
        params.window,
        params.stride,
        params.tile_size,
        params.schedule,
    );
    let index = schedule
        .windows
        .iter()
        .position(|w| (w.x, w.y) == (x, y))
        .ok_or(EngineError::NoWindowAt { x, y })?;
    let windows_per_batch = (params.batch_size / samples).max(1);
    let start = index / windows_per_batch * windows_per_batch;
    let end = (start + windows_per_batch).min(schedule.windows.len());
    let batch = &schedule.windows[start..end];
    let at = (index - start) as i64;

    let BatchOutcome {
        replacement,
        per_window,
        p,
        p_without,
    } = outputs.run_batch(
        model,
        fill,
        &input,
        &value_x,
        batch,
        windows_per_batch,
        params.seed,
    )?;
    let rows = replacement
        .f_narrow(0, at * samples as i64, samples as i64)?
        .f_to_kind(Kind::Float)?;
    Ok(WindowInspection {
        window: schedule.windows[index],
        explained,
        replacements: host_f32(&rows)?,
        p_with: host_f64(&p_x)?[0],
        p_samples: host_f64(&p.f_get(at)?)?,
        p_without: host_f64(&p_without.f_narrow(0, at, 1)?)?[0],
        evidence: host_f64(&per_window.f_narrow(0, at, 1)?)?[0],
        laplace,
    })
}
