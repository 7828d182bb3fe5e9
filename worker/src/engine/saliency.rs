//! Saliency (Simonyan et al. 2014), a baseline: |d value(c | x) / dx| for
//! every pixel, the largest over its channels. One forward and one backward
//! pass and no windows: the window and stride of the request only shape the
//! tiles it is streamed in (each pixel is its own 1 x 1 "window").

use std::ops::ControlFlow;
use std::time::Instant;

use super::classifier::{Classifier, InputImage};
use super::error::EngineError;
use super::explain::{check_request, ExplainParams, Explanation, Progress};
use super::gradient::{finish_pixel_map, input_gradient, InputGradient};

pub fn saliency_explain(
    model: &dyn Classifier,
    image: &InputImage,
    params: &ExplainParams,
    on_progress: &mut dyn FnMut(Progress) -> ControlFlow<()>,
) -> Result<Explanation, EngineError> {
    let started_at = Instant::now();
    let shape = check_request(model, image, params, 1)?;
    let InputGradient {
        probabilities,
        predicted,
        explained,
        gradient,
    } = input_gradient(model, image, params)?;
    let map: Vec<f32> = (0..shape.pixels())
        .map(|i| {
            (0..shape.channels)
                .map(|c| gradient[c * shape.pixels() + i].abs())
                .fold(0.0, f32::max)
        })
        .collect();
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
