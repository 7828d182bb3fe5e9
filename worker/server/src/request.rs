//! Wire request -> domain values, with the defaults the contract documents,
//! checked against the model's summary before any work is queued.

use lens_proto::v1::{ExplainRequest, Method as WireMethod};

use lens_engine::engine::{
    positions, ExplainParams, InputImage, InputShape, MapClasses, Schedule, Target,
};
use lens_engine::input::{check_upload, InputError};
use lens_engine::methods::{self, MethodChoice, MethodError, MethodKind, SamplerKind};
use lens_engine::models::{input_for, Precision, Resize, Runtime, DIGITS};

use lens_store::{request_key, RequestKey};

use super::registry::{Entry, ModelSummary, Registry};
use super::status::ServiceError;

pub const DEFAULT_STRIDE: usize = 1;
pub const DEFAULT_SAMPLES: usize = 10;
pub const DEFAULT_TILE: usize = 7;
/// Smaller tiles would mean thousands of events per run, each kept for
/// late viewers.
pub const MIN_TILE: usize = 4;
pub use lens_engine::methods::DEFAULT_PADDING;
/// A run longer than this many batches streams a coarse map first.
pub const COARSE_AFTER_BATCHES: usize = 4;

/// A model with more classes gets maps of its most probable ones only.
pub const ALL_MAPS_UP_TO: usize = 10;
/// How many of the most probable classes get a map then.
pub const TOP_MAPS: usize = 5;

/// Which classes get a map besides the explained one: every class of a
/// small model, else the most probable few. They come from the same forward
/// passes (only accumulation), so the page switches between them without a
/// new run.
pub fn other_maps(kind: MethodKind, classes: usize) -> MapClasses {
    if kind.one_class_per_run() {
        MapClasses::Classes(Vec::new())
    } else if classes <= ALL_MAPS_UP_TO {
        MapClasses::All
    } else {
        MapClasses::Top(TOP_MAPS)
    }
}

#[derive(Debug)]
pub struct Job {
    pub model: String,
    /// The upload, checked (size, format, pixels) but not decoded: that
    /// happens on the job's thread, after admission (`Job::input`).
    pub upload: Vec<u8>,
    /// Its width x height, for the decoding budget.
    pub pixels: u64,
    resize: Resize,
    shape: InputShape,
    pub choice: MethodChoice,
    pub params: ExplainParams,
    /// What identical requests share (see `store::request_key`).
    pub key: RequestKey,
    /// The request with every default filled in and the image left out.
    pub resolved: ExplainRequest,
}

fn or_default(value: u32, default: usize) -> usize {
    if value == 0 {
        default
    } else {
        value as usize
    }
}

/// The model with this id (empty: the digits).
pub fn model_by_id<'r>(registry: &'r Registry, id: &str) -> Result<&'r Entry, ServiceError> {
    let id = if id.is_empty() { DIGITS } else { id };
    registry.get(id).ok_or_else(|| ServiceError::UnknownModel {
        id: id.to_string(),
        available: registry.ids().join(", "),
    })
}

impl Job {
    /// The upload decoded and converted to the model's input (CPU work:
    /// call it on a blocking thread).
    pub fn input(&self) -> Result<InputImage, InputError> {
        input_for(self.resize, self.shape, &self.upload)
    }
}

/// A request's method and parameters, every default filled in, validated
/// against the model (the image aside).
#[derive(Clone, Debug)]
pub struct Settings {
    pub choice: MethodChoice,
    pub params: ExplainParams,
    /// Forward passes per window: S for PDA and the sampled mean, else 1.
    pub samples_per_window: usize,
}

/// The settings a request asks for (no image needed: also for estimates).
pub fn settings_from_request(
    request: &ExplainRequest,
    model: &ModelSummary,
) -> Result<Settings, ServiceError> {
    let wire = WireMethod::try_from(request.method).map_err(|_| ServiceError::UnknownMethod {
        value: request.method,
    })?;
    if request.tile_size != 0 && (request.tile_size as usize) < MIN_TILE {
        return Err(ServiceError::TileTooSmall {
            tile: request.tile_size as usize,
            min: MIN_TILE,
        });
    }
    let kind = match wire {
        WireMethod::Pda => MethodKind::Pda,
        WireMethod::EfficientPda | WireMethod::Unspecified => MethodKind::EfficientPda,
        WireMethod::SampledMean => MethodKind::SampledMean,
        WireMethod::Gradient => MethodKind::Gradient,
        WireMethod::Occlusion => MethodKind::Occlusion,
        WireMethod::Saliency => MethodKind::Saliency,
        WireMethod::GradCam => MethodKind::GradCam,
    };
    if kind.needs_gradients() && !model.gradients {
        return Err(MethodError::NeedsTorchScript {
            model: model.name.clone(),
            method: kind.name(),
        }
        .into());
    }
    let samples = request.samples.map_or(DEFAULT_SAMPLES, |s| s as usize);
    let choice = MethodChoice {
        kind,
        sampler: SamplerKind::Auto,
        samples,
        padding: or_default(request.padding, DEFAULT_PADDING),
        occlusion_value: lens_engine::methods::DEFAULT_OCCLUSION_VALUE,
    };
    let window = or_default(request.window, model.default_window());
    let budget = request.budget.unwrap_or(1.0);
    methods::check_budget(kind, budget)?;
    let mut params = ExplainParams {
        window,
        stride: or_default(request.stride, DEFAULT_STRIDE),
        batch_size: or_default(request.batch_size, model.default_batch),
        tile_size: or_default(request.tile_size, DEFAULT_TILE.max(window)),
        seed: request.seed,
        target: request
            .class_index
            .map_or(Target::Predicted, |c| Target::Class(c as usize)),
        quantity: kind.quantity(),
        maps: other_maps(kind, model.class_names.len()),
        schedule: Schedule::Plain,
        takeover: Default::default(),
        budget,
    };
    let checked_samples = match kind {
        MethodKind::Pda | MethodKind::SampledMean => samples,
        _ => 1,
    };
    params.validate(model.shape, model.class_names.len(), checked_samples)?;
    // Only valid windows have positions.
    params.schedule = schedule_for(&params, model.shape, checked_samples);
    Ok(Settings {
        choice,
        params,
        samples_per_window: checked_samples,
    })
}

/// Checks the upload's header, fills in defaults, validates, and keys the
/// request (hashing the upload: call it on a blocking thread). The image is
/// decoded later, by `Job::input`.
pub fn job_from_request(
    mut request: ExplainRequest,
    model: &ModelSummary,
) -> Result<Job, ServiceError> {
    let Settings { choice, params, .. } = settings_from_request(&request, model)?;
    let pixels = check_upload(&request.image)?;
    let (kind, samples) = (choice.kind, choice.samples);
    let resolved = ExplainRequest {
        image: Vec::new(),
        method: wire_method(kind) as i32,
        window: params.window as u32,
        stride: params.stride as u32,
        samples: Some(samples as u32),
        seed: params.seed,
        batch_size: params.batch_size as u32,
        class_index: request.class_index,
        tile_size: params.tile_size as u32,
        model: model.id.clone(),
        padding: choice.padding as u32,
        budget: (params.budget < 1.0).then_some(params.budget),
    };
    // Batch size, tile size and schedule do not change the result, so they
    // are not part of the key; everything else is, with the engine's
    // version (version 2 keys draws by window position). Full precision
    // on libtorch adds nothing, so keys made before half precision and ONNX
    // Runtime existed still hold; the gradient methods always run on
    // libtorch.
    let precision = match model.precision {
        Precision::Full => "",
        Precision::Half => " precision=half",
    };
    let runtime = match model.runtime {
        Runtime::Onnx if !kind.needs_gradients() => format!(" runtime={}", model.runtime_version),
        _ => String::new(),
    };
    // Every window computed is what keys made before budgets meant.
    let budget = if params.budget < 1.0 {
        format!(" budget={}", params.budget)
    } else {
        String::new()
    };
    let settings = format!(
        "engine=2{precision}{runtime}{budget} {} {:?} {:?} samples={} padding={} occlusion={} window={} stride={} seed={} target={:?} quantity={:?}",
        model.id,
        kind,
        choice.sampler,
        samples,
        choice.padding,
        choice.occlusion_value,
        params.window,
        params.stride,
        params.seed,
        params.target,
        params.quantity,
    );
    Ok(Job {
        model: model.id.clone(),
        key: request_key(&request.image, &settings),
        upload: std::mem::take(&mut request.image),
        pixels,
        resize: model.resize,
        shape: model.shape,
        choice,
        params,
        resolved,
    })
}

/// Runs of more than a few batches with windows that overlap stream a
/// coarse map first (`Schedule::CoarseToFine`); short ones need no preview.
pub fn schedule_for(params: &ExplainParams, shape: InputShape, samples: usize) -> Schedule {
    let axis = |length| positions(length, params.window, params.stride).len();
    let passes = axis(shape.height) * axis(shape.width) * samples;
    let overlapping = params.stride < params.window;
    if overlapping && params.window > 1 && passes > COARSE_AFTER_BATCHES * params.batch_size {
        Schedule::CoarseToFine
    } else {
        Schedule::Plain
    }
}

pub fn wire_method(kind: MethodKind) -> WireMethod {
    match kind {
        MethodKind::Pda => WireMethod::Pda,
        MethodKind::EfficientPda => WireMethod::EfficientPda,
        MethodKind::SampledMean => WireMethod::SampledMean,
        MethodKind::Gradient => WireMethod::Gradient,
        MethodKind::Occlusion => WireMethod::Occlusion,
        MethodKind::Saliency => WireMethod::Saliency,
        MethodKind::GradCam => WireMethod::GradCam,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The digits network as the registry describes it (also used by
    /// `estimate`'s tests).
    pub(crate) fn digits_summary(precision: Precision) -> ModelSummary {
        summary_on(precision, Runtime::Torch)
    }

    fn summary_on(precision: Precision, runtime: Runtime) -> ModelSummary {
        ModelSummary {
            id: DIGITS.into(),
            name: "digits".into(),
            shape: InputShape {
                channels: 1,
                height: 28,
                width: 28,
            },
            class_names: (0..10).map(|d| d.to_string()).collect(),
            resize: Resize::MnistDigit,
            conditional_sampler: false,
            conditional_windows: Vec::new(),
            marginal_sampler: true,
            default_batch: 16,
            precision,
            runtime,
            runtime_version: format!("{runtime:?} 1.0"),
            gradients: true,
            device: "CPU".into(),
            agreement: None,
            defaults: None,
        }
    }

    fn digit_png() -> Vec<u8> {
        let mut png = Vec::new();
        image::GrayImage::new(28, 28)
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        png
    }

    #[test]
    fn half_precision_maps_are_kept_apart_from_full_precision_ones() {
        let request = ExplainRequest {
            image: digit_png(),
            method: WireMethod::EfficientPda as i32,
            ..Default::default()
        };
        let key = |precision| {
            job_from_request(request.clone(), &digits_summary(precision))
                .unwrap()
                .key
        };
        assert_eq!(key(Precision::Full), key(Precision::Full));
        assert_ne!(key(Precision::Full), key(Precision::Half));
    }

    #[test]
    fn onnx_runtime_maps_are_kept_apart_except_for_the_gradient_methods() {
        let key = |method: WireMethod, runtime| {
            let request = ExplainRequest {
                image: digit_png(),
                method: method as i32,
                ..Default::default()
            };
            job_from_request(request, &summary_on(Precision::Full, runtime))
                .unwrap()
                .key
        };
        for window_method in [WireMethod::EfficientPda, WireMethod::Occlusion] {
            assert_ne!(
                key(window_method, Runtime::Torch),
                key(window_method, Runtime::Onnx)
            );
        }
        assert_eq!(
            key(WireMethod::Gradient, Runtime::Torch),
            key(WireMethod::Gradient, Runtime::Onnx),
            "gradients run on libtorch on both"
        );
    }

    #[test]
    fn gradient_methods_are_refused_for_a_model_without_torchscript() {
        let summary = ModelSummary {
            gradients: false,
            ..summary_on(Precision::Full, Runtime::Onnx)
        };
        for method in [
            WireMethod::Gradient,
            WireMethod::Saliency,
            WireMethod::GradCam,
        ] {
            let request = ExplainRequest {
                method: method as i32,
                ..Default::default()
            };
            let error = settings_from_request(&request, &summary).err().unwrap();
            let status = tonic::Status::from(error);
            assert_eq!(status.code(), tonic::Code::InvalidArgument);
            assert!(
                status.message().contains("TorchScript"),
                "{}",
                status.message()
            );
        }
        let occlusion = ExplainRequest {
            method: WireMethod::Occlusion as i32,
            ..Default::default()
        };
        assert!(settings_from_request(&occlusion, &summary).is_ok());
    }

    #[test]
    fn the_budget_is_part_of_the_identity_and_kept_in_the_request() {
        let job = |budget: Option<f64>| {
            let request = ExplainRequest {
                image: digit_png(),
                method: WireMethod::Pda as i32,
                budget,
                ..Default::default()
            };
            job_from_request(request, &digits_summary(Precision::Full)).unwrap()
        };
        let (full, unset, quarter) = (job(Some(1.0)), job(None), job(Some(0.25)));
        assert_eq!(full.key, unset.key, "a budget of 1 is every window");
        assert_eq!(full.resolved.budget, None);
        assert_ne!(full.key, quarter.key);
        assert_ne!(quarter.key, job(Some(0.125)).key);
        assert_eq!(quarter.resolved.budget, Some(0.25));
        assert_eq!(quarter.params.budget, 0.25);
    }

    #[test]
    fn a_budget_is_refused_outside_zero_to_one_and_for_gradient_methods() {
        let summary = digits_summary(Precision::Full);
        let refused = |method: WireMethod, budget: f64| {
            let request = ExplainRequest {
                method: method as i32,
                budget: Some(budget),
                ..Default::default()
            };
            let status =
                tonic::Status::from(settings_from_request(&request, &summary).unwrap_err());
            assert_eq!(status.code(), tonic::Code::InvalidArgument);
            status.message().to_string()
        };
        for budget in [0.0, 1.5, -1.0, f64::NAN] {
            let message = refused(WireMethod::Occlusion, budget);
            assert!(message.contains("budget"), "{message}");
        }
        let message = refused(WireMethod::Saliency, 0.5);
        assert!(message.contains("window methods"), "{message}");
    }
}
