//! How long a run would take on this worker, and which settings fit a
//! lesson: the page asks before a long run and suggests a stride that fits.

use lens_proto::v1::{EstimateResponse, MethodAgreement, ModelInfo};

use lens_engine::agreement::ModelAgreement;
use lens_engine::engine::{positions, Refinement};
use lens_engine::methods::{self, MethodKind};

use super::registry::ModelSummary;
use super::request::{wire_method, Settings};
use super::speed::Speeds;

/// Longer runs are confirmed first, with a stride that fits suggested.
pub use lens_proto::LESSON_SECONDS;
/// A model's default stride finishes efficient PDA within this.
pub const DEFAULT_RUN_SECONDS: f64 = 10.0;

/// Windows and forward passes of a run with these settings (gradient
/// methods: one pass, whatever the window).
pub fn work(settings: &Settings, model: &ModelSummary) -> (usize, usize) {
    let params = &settings.params;
    let axis = |length| positions(length, params.window, params.stride).len();
    let (rows, columns) = (axis(model.shape.height), axis(model.shape.width));
    let windows = rows * columns;
    if settings.choice.kind.one_class_per_run() {
        return (windows, 1);
    }
    let computed = if params.budget < 1.0 {
        Refinement::new(rows, columns, params.window, params.stride, params.budget).target()
    } else {
        windows
    };
    // Plus the pass on the image itself.
    (windows, computed * settings.samples_per_window + 1)
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

/// What the page starts a model with on this worker.
#[derive(Clone, Debug, PartialEq)]
pub struct Defaults {
    pub kind: MethodKind,
    /// S, for PDA and the sampled mean.
    pub samples: usize,
    pub window: usize,
    pub stride: usize,
    /// The share of the windows computed (1: every window).
    pub budget: f64,
    /// Why, for people; empty without a measurement for this device.
    pub basis: String,
}

/// The choice of the model's measurement (`defaults.json`) for this
/// worker's kind of device; without one, efficient PDA at the model's
/// window and the stride that finishes within `DEFAULT_RUN_SECONDS` here.
pub fn defaults(model: &ModelSummary, speeds: &Speeds) -> Defaults {
    let measured = model
        .defaults
        .as_ref()
        .and_then(|d| d.chosen_for(&model.device));
    if let Some((device, chosen)) = measured {
        if let Some(kind) = MethodKind::from_name(&chosen.method) {
            let borrowed = if model.device.starts_with(&device.device) {
                ""
            } else {
                " (every setting fit there, so a faster device chooses the same)"
            };
            return Defaults {
                kind,
                samples: chosen.samples.unwrap_or(super::request::DEFAULT_SAMPLES),
                window: chosen.window,
                stride: chosen.stride,
                budget: chosen.budget_share(),
                basis: format!(
                    "chosen by measurement on {} over {} images: {:.1} s an image there, \
                     agreement with PDA {:.2}{borrowed}",
                    device.machine,
                    device.images.len(),
                    chosen.seconds,
                    chosen.rank_correlation.unwrap_or(0.0)
                ),
            };
        }
    }
    Defaults {
        kind: MethodKind::EfficientPda,
        samples: super::request::DEFAULT_SAMPLES,
        window: model.default_window(),
        stride: default_stride(model, speeds),
        budget: 1.0,
        basis: String::new(),
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

/// A model as the page sees it.
pub fn model_info(s: &ModelSummary, speeds: &Speeds) -> ModelInfo {
    let defaults = defaults(s, speeds);
    ModelInfo {
        id: s.id.clone(),
        name: s.name.clone(),
        channels: s.shape.channels as u32,
        width: s.shape.width as u32,
        height: s.shape.height as u32,
        class_names: s.class_names.clone(),
        default_window: defaults.window as u32,
        conditional_sampler: s.conditional_sampler,
        conditional_windows: s.conditional_windows.clone(),
        marginal_sampler: s.marginal_sampler,
        default_stride: defaults.stride as u32,
        default_method: wire_method(defaults.kind) as i32,
        default_samples: defaults.samples as u32,
        default_budget: defaults.budget,
        defaults_basis: defaults.basis,
        device: s.device.clone(),
        agreement: s.agreement.iter().flat_map(agreement_info).collect(),
        agreement_reference: s
            .agreement
            .as_ref()
            .map_or(String::new(), |a| a.reference.clone()),
        agreement_ceiling: s.agreement.as_ref().map_or(0.0, |a| a.ceiling),
        runtime: s.runtime_version.clone(),
        gradients_unavailable: if s.gradients {
            String::new()
        } else {
            GRADIENTS_NEED_TORCHSCRIPT.into()
        },
    }
}

/// Why a model without TorchScript has no gradient methods, for people.
pub const GRADIENTS_NEED_TORCHSCRIPT: &str =
    "this model is an ONNX file, and gradients need it as TorchScript (libtorch)";

/// A model's measured agreement for the page (methods the worker does not
/// know are left out).
fn agreement_info(agreement: &ModelAgreement) -> Vec<MethodAgreement> {
    agreement
        .methods
        .iter()
        .filter_map(|m| {
            let kind = methods::MethodKind::from_name(&m.method)?;
            Some(MethodAgreement {
                method: wire_method(kind) as i32,
                samples: m.samples.unwrap_or(0) as u32,
                rank_correlation: m.rank_correlation,
                top_overlap: m.top_overlap,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use lens_engine::defaults::{DeviceDefaults, MeasuredSetting, ModelDefaults};
    use lens_engine::engine::InputShape;
    use lens_engine::models::{Precision, Resize, Runtime};
    use lens_proto::v1::{ExplainRequest, Method as WireMethod};

    use crate::request::settings_from_request;
    use crate::request::tests::digits_summary;

    fn photos(defaults: Option<ModelDefaults>) -> ModelSummary {
        ModelSummary {
            id: "photos".into(),
            name: "photos".into(),
            shape: InputShape {
                channels: 3,
                height: 224,
                width: 224,
            },
            class_names: vec!["a".into(); 1000],
            resize: Resize::ImagenetCrop,
            conditional_sampler: true,
            conditional_windows: vec![6, 10, 16, 24],
            marginal_sampler: false,
            default_batch: 16,
            precision: Precision::Full,
            runtime: Runtime::Onnx,
            runtime_version: "ONNX Runtime 1.32.0".into(),
            gradients: true,
            device: "CPU".into(),
            agreement: None,
            defaults,
        }
    }

    #[test]
    fn the_estimate_counts_the_windows_a_budget_computes() {
        let digits = digits_summary(Precision::Full);
        let passes = |budget: Option<f64>| {
            let request = ExplainRequest {
                method: WireMethod::Pda as i32,
                samples: Some(4),
                budget,
                ..Default::default()
            };
            let settings = settings_from_request(&request, &digits).unwrap();
            work(&settings, &digits)
        };
        assert_eq!(passes(None), (625, 625 * 4 + 1));
        // A quarter of 625 windows rounds up to 157.
        assert_eq!(passes(Some(0.25)), (625, 157 * 4 + 1));
    }

    #[test]
    fn without_a_measurement_efficient_pda_takes_the_finest_stride_that_fits() {
        let speeds = Speeds::default();
        // 100 passes a second: at most 1,000 passes in ten seconds.
        speeds.set_network("photos", 100.0);
        let model = photos(None);
        let chosen = defaults(&model, &speeds);
        assert_eq!((chosen.kind, chosen.window), (MethodKind::EfficientPda, 10));
        assert!(chosen.basis.is_empty());
        let passes = |stride| positions(224, 10, stride).len().pow(2) + 1;
        assert!(passes(chosen.stride) <= 1000, "{chosen:?}");
        assert!(passes(chosen.stride - 1) > 1000, "{chosen:?}");
        // Before any speed is known: the window (one pass per pixel block).
        assert_eq!(defaults(&model, &Speeds::default()).stride, 10);
    }

    #[test]
    fn a_measurement_for_this_device_decides() {
        let pda = MeasuredSetting {
            method: "pda".into(),
            samples: Some(2),
            window: 24,
            stride: 12,
            budget: Some(0.25),
            seconds: 12.5,
            measured: true,
            rank_correlation: Some(0.97),
            deletion_blur: Some(0.1),
            insertion_blur: Some(0.3),
            deletion_grey: Some(0.1),
            insertion_grey: Some(0.3),
        };
        let measured = ModelDefaults {
            devices: vec![DeviceDefaults {
                device: "CPU".into(),
                machine: "2 CPU cores".into(),
                budget_seconds: 15.0,
                reference: "PDA, S = 8".into(),
                images: vec!["a.png".into(), "b.png".into()],
                settings: vec![pda],
                previous: None,
                measured_unix: 0,
            }],
        };
        let speeds = Speeds::default();
        let chosen = defaults(&photos(Some(measured.clone())), &speeds);
        assert_eq!(
            (chosen.kind, chosen.samples, chosen.window, chosen.stride),
            (MethodKind::Pda, 2, 24, 12)
        );
        assert_eq!(chosen.budget, 0.25, "a budgeted default keeps its budget");
        assert_eq!(
            model_info(&photos(Some(measured.clone())), &speeds).default_budget,
            0.25
        );
        assert_eq!(
            chosen.basis,
            "chosen by measurement on 2 CPU cores over 2 images: 12.5 s an image there, \
             agreement with PDA 0.97"
        );
        // A CUDA worker without a measurement of its own takes the CPU's
        // choice, since every setting fit there, and says so.
        let cuda = ModelSummary {
            device: "CUDA".into(),
            ..photos(Some(measured.clone()))
        };
        let on_cuda = defaults(&cuda, &speeds);
        assert_eq!((on_cuda.kind, on_cuda.stride), (MethodKind::Pda, 12));
        assert!(on_cuda
            .basis
            .ends_with("so a faster device chooses the same)"));
        // One setting left out on the CPU for time: the earlier rule.
        let mut partial = measured;
        let mut slow = partial.devices[0].settings[0].clone();
        slow.seconds = 40.0;
        slow.measured = false;
        partial.devices[0].settings.push(slow);
        let cuda = ModelSummary {
            device: "CUDA".into(),
            ..photos(Some(partial))
        };
        assert_eq!(defaults(&cuda, &speeds).kind, MethodKind::EfficientPda);
    }
}
