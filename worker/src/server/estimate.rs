//! How long a run would take on this worker, and which settings fit a
//! lesson: the page asks before a long run and suggests a stride that fits.

use lens_proto::v1::EstimateResponse;

use crate::engine::positions;
use crate::methods::MethodKind;

use super::registry::ModelSummary;
use super::request::Settings;
use super::speed::Speeds;

/// Longer runs are confirmed first, with a stride that fits suggested.
pub const LESSON_SECONDS: f64 = 60.0;
/// A model's default stride finishes efficient PDA within this.
pub const DEFAULT_RUN_SECONDS: f64 = 10.0;

/// Windows and forward passes of a run with these settings (gradient
/// methods: one pass, whatever the window).
pub fn work(settings: &Settings, model: &ModelSummary) -> (usize, usize) {
    let params = &settings.params;
    let axis = |length| positions(length, params.window, params.stride).len();
    let windows = axis(model.shape.height) * axis(model.shape.width);
    if settings.choice.kind.one_class_per_run() {
        return (windows, 1);
    }
    // Plus the pass on the image itself.
    (windows, windows * settings.samples_per_window + 1)
}

/// The estimate for `settings`, with a stride that fits a lesson where the
/// run would not. `None` seconds when nothing was measured yet.
pub fn estimate(
    settings: &Settings,
    model: &ModelSummary,
    speeds: &Speeds,
    jobs_ahead: usize,
) -> EstimateResponse {
    let (windows, passes) = work(settings, model);
    let rate = speeds.passes_per_second(&model.id, settings.choice.kind);
    let seconds_at = |stride: usize| {
        let mut other = settings.clone();
        other.params.stride = stride;
        rate.map_or(0.0, |r| work(&other, model).1 as f64 / r)
    };
    let seconds = seconds_at(settings.params.stride);
    let suggested = if seconds > LESSON_SECONDS && !settings.choice.kind.one_class_per_run() {
        (settings.params.stride + 1..=settings.params.window)
            .find(|&s| seconds_at(s) <= LESSON_SECONDS)
    } else {
        None
    };
    EstimateResponse {
        windows: windows as u64,
        forward_passes: passes as u64,
        seconds,
        device: model.device.clone(),
        jobs_ahead: jobs_ahead as u32,
        suggested_stride: suggested.unwrap_or(0) as u32,
        suggested_seconds: suggested.map_or(0.0, seconds_at),
    }
}

/// The smallest stride (up to the window) at which efficient PDA takes at
/// most `DEFAULT_RUN_SECONDS` on this worker; the window before any
/// measurement.
pub fn default_stride(model: &ModelSummary, speeds: &Speeds) -> usize {
    let window = model.default_window();
    let Some(rate) = speeds.passes_per_second(&model.id, MethodKind::EfficientPda) else {
        return window;
    };
    let axis = |length, stride| positions(length, window, stride).len();
    (1..=window)
        .find(|&stride| {
            let passes = axis(model.shape.height, stride) * axis(model.shape.width, stride) + 1;
            passes as f64 / rate <= DEFAULT_RUN_SECONDS
        })
        .unwrap_or(window)
}
