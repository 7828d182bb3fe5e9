//! Grad-CAM (Selvaraju et al. 2017), a baseline: the last convolutional
//! feature maps A_k weighted by the spatial mean of d z_c / d A_k (z_c the
//! class logit), summed, passed through ReLU and upsampled bilinearly to the
//! input size. It shows evidence for the class only (values >= 0), at the
//! resolution of the feature map. Needs a model that exposes its features
//! (`Classifier::features` and `head`).

use std::ops::ControlFlow;
use std::time::Instant;

use tch::{Kind, Tensor};

use super::classifier::{Classifier, InputImage};
use super::device::host_f32;
use super::error::EngineError;
use super::explain::{check_request, ExplainParams, Explanation};
use super::gradient::finish_pixel_map;
use super::progress::Progress;

pub fn gradcam_explain(
    model: &dyn Classifier,
    image: &InputImage,
    params: &ExplainParams,
    on_progress: &mut dyn FnMut(Progress) -> ControlFlow<()>,
) -> Result<Explanation, EngineError> {
    let started_at = Instant::now();
    let shape = check_request(model, image, params, 1)?;
    let x = Tensor::from_slice(&image.values)
        .view([
            1,
            shape.channels as i64,
            shape.height as i64,
            shape.width as i64,
        ])
        .to_device(model.device());
    let model_error = |e| EngineError::from_model(e, 1);
    let features = model
        .features(&x)
        .map_err(model_error)?
        .ok_or(EngineError::NoFeatures)?
        .detach()
        .set_requires_grad(true);
    let logits = model
        .head(&features)
        .map_err(model_error)?
        .ok_or(EngineError::NoFeatures)?
        .to_kind(Kind::Float);
    let probabilities = host_f32(&logits.f_softmax(-1, Kind::Float)?.detach())?;
    let (predicted, explained) = params.target.resolve(&probabilities);
    logits.get(0).get(explained as i64).backward();
    let weights = features
        .grad()
        .mean_dim([2i64, 3].as_slice(), true, Kind::Float);
    let cam = (&weights * features.detach())
        .sum_dim_intlist([1i64].as_slice(), true, Kind::Float)
        .relu()
        .upsample_bilinear2d([shape.height as i64, shape.width as i64], false, None, None);
    let map = host_f32(&cam)?;

    let prediction = (probabilities, predicted, explained);
    finish_pixel_map(
        prediction,
        map,
        shape,
        params.tile_size,
        started_at,
        on_progress,
    )
}
