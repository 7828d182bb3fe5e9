//! Saliency (Simonyan et al. 2014), a baseline: |d value(c | x) / dx| for
//! every pixel, the largest over its channels. One forward and one backward
//! pass and no windows: the window and stride of the request only shape the
//! tiles it is streamed in (each pixel is its own 1 x 1 "window").

use std::ops::ControlFlow;
use std::time::Instant;

use super::classifier::{Classifier, InputImage};
use super::device::host_f32;
use super::error::EngineError;
use super::explain::{check_request, ExplainParams, Explanation};
use super::gradient::{finish_pixel_map, input_gradient, InputGradient};
use super::perturb::DeviceInput;
use super::progress::Progress;

pub fn saliency_explain(
    model: &dyn Classifier,
    image: &InputImage,
    params: &ExplainParams,
    on_progress: &mut dyn FnMut(Progress) -> ControlFlow<()>,
) -> Result<Explanation, EngineError> {
    let started_at = Instant::now();
    let shape = check_request(model, image, params, 1)?;
    let input = DeviceInput::new(image, params.window, model.device());
    let InputGradient {
        probabilities,
        predicted,
        explained,
        gradient,
    } = input_gradient(model, &input, params)?;
    // The largest |gradient| over the channels of each pixel, on the device.
    let map = host_f32(
        &gradient
            .f_view([shape.channels as i64, shape.pixels() as i64])?
            .f_abs()?
            .f_amax([0i64].as_slice(), false)?,
    )?;
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
