//! Deletion and insertion (Petsiuk et al., RISE, 2018): how a map's ranking
//! of the pixels explains the network. Deletion removes the pixels the map
//! ranks highest first and follows the class probability as it falls;
//! insertion puts them back first into an image with everything removed and
//! follows it as it rises. A faithful map falls fast (small deletion area)
//! and rises fast (large insertion area).
//!
//! Every curve is measured from the same batched run, beside two baselines
//! that know nothing of the network: a random order (the mean of several
//! seeds) and an edge order (the Sobel magnitude of the image, strongest
//! edges first). A map that does not beat them explains nothing.

use tch::{Device, Kind, Tensor};

use super::classifier::{logits_of, Classifier, InputImage, InputShape};
use super::device::{host_f32, upload};
use super::error::EngineError;

/// What a removed pixel becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Removal {
    /// The pixel of a blurred copy of the image (RISE's choice for
    /// insertion): removes detail but keeps colour and rough shape.
    Blur,
    /// Mid grey (0.5 in every channel of the [0, 1] input).
    Grey,
}

impl Removal {
    pub fn name(self) -> &'static str {
        match self {
            Removal::Blur => "blur",
            Removal::Grey => "grey",
        }
    }
}

#[derive(Clone, Debug)]
pub struct DeletionParams {
    /// The class whose probability the curves follow.
    pub class: usize,
    /// Steps from nothing to everything removed (50: 2% of the pixels each).
    pub steps: usize,
    pub removal: Removal,
    /// Random orders averaged for the random baseline.
    pub random_orders: usize,
    pub seed: u64,
    pub batch_size: usize,
}

impl DeletionParams {
    pub fn new(class: usize, removal: Removal, batch_size: usize) -> Self {
        DeletionParams {
            class,
            steps: 50,
            removal,
            random_orders: 4,
            seed: 0,
            batch_size,
        }
    }
}

/// P(class) after each step, `steps + 1` values: deletion from the image to
/// everything removed, insertion from everything removed to the image.
#[derive(Clone, Debug, PartialEq)]
pub struct Curves {
    pub deletion: Vec<f32>,
    pub insertion: Vec<f32>,
}

impl Curves {
    pub fn deletion_auc(&self) -> f64 {
        area(&self.deletion)
    }
    pub fn insertion_auc(&self) -> f64 {
        area(&self.insertion)
    }
}

/// The area under a curve sampled at equal steps over [0, 1] (trapezoids).
pub fn area(curve: &[f32]) -> f64 {
    if curve.len() < 2 {
        return curve.first().copied().unwrap_or(0.0) as f64;
    }
    let inner: f64 = curve.windows(2).map(|p| (p[0] + p[1]) as f64 / 2.0).sum();
    inner / (curve.len() - 1) as f64
}

#[derive(Clone, Debug)]
pub struct Faithfulness {
    pub class: usize,
    pub removal: Removal,
    /// The blur's standard deviation in pixels (0 for grey).
    pub blur_sigma: f64,
    pub steps: usize,
    pub map: Curves,
    /// The mean curve of `random_orders` random orders.
    pub random: Curves,
    pub random_orders: usize,
    pub edges: Curves,
    pub forward_passes: usize,
}

/// Deletion and insertion curves of `map` (one value per pixel, row-major,
/// higher = more evidence for the class) and of the two baselines.
pub fn deletion_insertion(
    model: &dyn Classifier,
    image: &InputImage,
    map: &[f32],
    params: &DeletionParams,
) -> Result<Faithfulness, EngineError> {
    let prepared = Prepared::new(model, image, map, params)?;
    let edges = sobel_magnitude(&prepared.original)?;
    let mut orders = vec![ranks(map, params.seed), ranks(&edges, params.seed)];
    for r in 0..params.random_orders {
        let noise = random_scores(prepared.pixels, params.seed ^ ((r as u64 + 1) << 32));
        orders.push(ranks(&noise, params.seed));
    }
    let curves = prepared.measure(model, &orders, params)?;
    let mut curves = curves.into_iter();
    let map_curves = curves.next().expect("the map's order");
    let edge_curves = curves.next().expect("the edge order");
    let random: Vec<Curves> = curves.collect();
    Ok(Faithfulness {
        class: params.class,
        removal: params.removal,
        blur_sigma: prepared.blur_sigma,
        steps: params.steps,
        map: map_curves,
        random: mean_curves(&random, params.steps),
        random_orders: random.len(),
        edges: edge_curves,
        forward_passes: orders.len() * 2 * (params.steps + 1),
    })
}

/// The map's own curves only (no baselines): what a comparison of many
/// maps of one image needs, at a sixth of the passes.
pub fn map_curves(
    model: &dyn Classifier,
    image: &InputImage,
    map: &[f32],
    params: &DeletionParams,
) -> Result<Curves, EngineError> {
    let prepared = Prepared::new(model, image, map, params)?;
    let curves = prepared.measure(model, &[ranks(map, params.seed)], params)?;
    Ok(curves.into_iter().next().expect("the map's order"))
}

/// The checked inputs of a measurement: the image and what removed pixels
/// become, on the model's device.
struct Prepared {
    original: Tensor,
    removed: Tensor,
    blur_sigma: f64,
    pixels: usize,
    _no_grad: tch::NoGradGuard,
}

impl Prepared {
    fn new(
        model: &dyn Classifier,
        image: &InputImage,
        map: &[f32],
        params: &DeletionParams,
    ) -> Result<Prepared, EngineError> {
        let shape = model.input_shape();
        if image.shape != shape {
            return Err(EngineError::ShapeMismatch {
                got: image.shape,
                expected: shape,
            });
        }
        if map.len() != shape.pixels() {
            return Err(EngineError::MapSize {
                got: map.len(),
                pixels: shape.pixels(),
            });
        }
        if params.class >= model.num_classes() {
            return Err(EngineError::NoSuchClass {
                class: params.class,
                classes: model.num_classes(),
            });
        }
        if params.batch_size == 0 {
            return Err(EngineError::BadBatchSize {
                batch_size: 0,
                max: super::MAX_BATCH,
            });
        }
        let no_grad = tch::no_grad_guard();
        let original = upload(&image.values, model.device()).f_view(dims(shape, 1))?;
        let blur_sigma = match params.removal {
            Removal::Blur => blur_sigma(shape),
            Removal::Grey => 0.0,
        };
        let removed = match params.removal {
            Removal::Blur => gaussian_blur(&original, blur_sigma)?,
            Removal::Grey => original.f_full_like(0.5)?,
        };
        Ok(Prepared {
            original,
            removed,
            blur_sigma,
            pixels: shape.pixels(),
            _no_grad: no_grad,
        })
    }

    fn measure(
        &self,
        model: &dyn Classifier,
        orders: &[Vec<i64>],
        params: &DeletionParams,
    ) -> Result<Vec<Curves>, EngineError> {
        measure(
            model,
            &self.original,
            &self.removed,
            orders,
            params,
            model.device(),
        )
    }
}

fn dims(shape: InputShape, batch: i64) -> [i64; 4] {
    [
        batch,
        shape.channels as i64,
        shape.height as i64,
        shape.width as i64,
    ]
}

/// P(class) for every (order, curve, step): images built on the device from
/// each order's ranks, `batch_size` at a time.
fn measure(
    model: &dyn Classifier,
    original: &Tensor,
    removed: &Tensor,
    orders: &[Vec<i64>],
    params: &DeletionParams,
    device: Device,
) -> Result<Vec<Curves>, EngineError> {
    let shape = model.input_shape();
    let pixels = shape.pixels();
    let points = params.steps + 1;
    let flat: Vec<i64> = orders.iter().flatten().copied().collect();
    let ranks = upload(&flat, device).f_view([orders.len() as i64, pixels as i64])?;
    // Pixels removed after step s: the s/steps share, rounded.
    let removed_after = |step: usize| ((step * pixels) as f64 / params.steps as f64).round() as i64;
    // One job per image: (order, insertion?, step).
    let jobs: Vec<(usize, bool, usize)> = (0..orders.len())
        .flat_map(|o| [false, true].map(|ins| (o, ins)))
        .flat_map(|(o, ins)| (0..points).map(move |s| (o, ins, s)))
        .collect();
    let mut probabilities = Vec::with_capacity(jobs.len());
    for chunk in jobs.chunks(params.batch_size) {
        let order_index: Vec<i64> = chunk.iter().map(|j| j.0 as i64).collect();
        let counts: Vec<i64> = chunk.iter().map(|j| removed_after(j.2)).collect();
        let inserting: Vec<bool> = chunk.iter().map(|j| j.1).collect();
        let batch = chunk.len() as i64;
        let chosen = ranks.f_index_select(0, &upload(&order_index, device))?;
        // For deletion the first `count` ranks are removed; for insertion
        // they are the ones put back, everything else removed.
        let first = chosen.f_lt_tensor(&upload(&counts, device).f_view([batch, 1])?)?;
        let take_removed = first
            .f_logical_xor(&upload(&inserting, device).f_view([batch, 1])?)?
            .f_view([batch, 1, shape.height as i64, shape.width as i64])?;
        let images = removed.f_where_self(&take_removed, original)?;
        let logits = logits_of(model, &images)?;
        let p = logits
            .f_softmax(-1, Kind::Float)?
            .f_select(1, params.class as i64)?;
        probabilities.extend(host_f32(&p)?);
    }
    Ok(probabilities
        .chunks(2 * points)
        .map(|both| Curves {
            deletion: both[..points].to_vec(),
            insertion: both[points..].to_vec(),
        })
        .collect())
}

fn mean_curves(all: &[Curves], steps: usize) -> Curves {
    let mean = |pick: &dyn Fn(&Curves) -> &Vec<f32>| -> Vec<f32> {
        (0..=steps)
            .map(|s| all.iter().map(|c| pick(c)[s]).sum::<f32>() / all.len().max(1) as f32)
            .collect()
    };
    Curves {
        deletion: mean(&|c| &c.deletion),
        insertion: mean(&|c| &c.insertion),
    }
}

/// Each pixel's place when pixels are taken highest score first; ties go in
/// an order fixed by `seed` rather than top rows first.
pub fn ranks(scores: &[f32], seed: u64) -> Vec<i64> {
    let tie = random_scores(scores.len(), seed);
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| {
        scores[b]
            .total_cmp(&scores[a])
            .then(tie[a].total_cmp(&tie[b]))
    });
    let mut rank = vec![0i64; scores.len()];
    for (place, &pixel) in order.iter().enumerate() {
        rank[pixel] = place as i64;
    }
    rank
}

/// Uniform scores in [0, 1) from a seed (splitmix64): the same on every
/// machine.
fn random_scores(count: usize, seed: u64) -> Vec<f32> {
    (0..count as u64)
        .map(|i| {
            let mut z = seed
                .wrapping_add(0x9E37_79B9_7F4A_7C15)
                .wrapping_add(i.wrapping_mul(0xBF58_476D_1CE4_E5B9));
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            (z >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect()
}

/// RISE blurs 224-pixel images with sigma 5: the same share of the side here.
fn blur_sigma(shape: InputShape) -> f64 {
    (shape.height.min(shape.width) as f64 * 5.0 / 224.0).max(1.0)
}

/// Each channel blurred with a Gaussian of `sigma` pixels, edges replicated.
fn gaussian_blur(image: &Tensor, sigma: f64) -> Result<Tensor, EngineError> {
    let radius = (3.0 * sigma).ceil() as i64;
    let weights: Vec<f32> = (-radius..=radius)
        .map(|d| (-(d * d) as f64 / (2.0 * sigma * sigma)).exp() as f32)
        .collect();
    let total: f32 = weights.iter().sum();
    let kernel = Tensor::from_slice(&weights)
        .f_divide_scalar(total as f64)?
        .f_to_device(image.device())?;
    let channels = image.size()[1];
    let size = 2 * radius + 1;
    let pass =
        |input: &Tensor, kernel_shape: [i64; 4], pad: [i64; 4]| -> Result<Tensor, EngineError> {
            let weight = kernel.f_view(kernel_shape)?.f_repeat([channels, 1, 1, 1])?;
            let padded = input.f_pad(pad, "replicate", None)?;
            Ok(padded.f_conv2d(&weight, None::<Tensor>, [1, 1], [0, 0], [1, 1], channels)?)
        };
    let rows = pass(image, [1, 1, 1, size], [radius, radius, 0, 0])?;
    pass(&rows, [1, 1, size, 1], [0, 0, radius, radius])
}

/// The Sobel gradient magnitude, summed over channels, per pixel.
fn sobel_magnitude(image: &Tensor) -> Result<Vec<f32>, EngineError> {
    let channels = image.size()[1];
    let dx: [f32; 9] = [-1.0, 0.0, 1.0, -2.0, 0.0, 2.0, -1.0, 0.0, 1.0];
    let dy: [f32; 9] = [-1.0, -2.0, -1.0, 0.0, 0.0, 0.0, 1.0, 2.0, 1.0];
    let padded = image.f_pad([1, 1, 1, 1], "replicate", None)?;
    let apply = |kernel: &[f32; 9]| -> Result<Tensor, EngineError> {
        let weight = Tensor::from_slice(kernel)
            .f_view([1, 1, 3, 3])?
            .f_repeat([channels, 1, 1, 1])?
            .f_to_device(image.device())?;
        Ok(padded.f_conv2d(&weight, None::<Tensor>, [1, 1], [0, 0], [1, 1], channels)?)
    };
    let (gx, gy) = (apply(&dx)?, apply(&dy)?);
    let magnitude = gx
        .f_square()?
        .f_add(&gy.f_square()?)?
        .f_sqrt()?
        .f_sum_dim_intlist([0i64, 1].as_slice(), false, Kind::Float)?;
    host_f32(&magnitude)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn area_of_a_straight_line_is_its_mean_height() {
        assert!((area(&[1.0, 0.5, 0.0]) - 0.5).abs() < 1e-12);
        assert!((area(&[0.2; 11]) - 0.2).abs() < 1e-6);
    }

    #[test]
    fn ranks_put_the_highest_first_and_break_ties_by_seed() {
        assert_eq!(ranks(&[0.1, 0.9, 0.5], 0), vec![2, 0, 1]);
        let flat = vec![1.0; 64];
        let (a, b) = (ranks(&flat, 1), ranks(&flat, 2));
        assert_ne!(a, b, "ties follow the seed");
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, (0..64).collect::<Vec<i64>>(), "a permutation");
    }

    #[test]
    fn blur_keeps_a_flat_image_and_spreads_a_point() {
        let flat = Tensor::full([1, 3, 9, 9], 0.25, (Kind::Float, Device::Cpu));
        let blurred = gaussian_blur(&flat, 1.5).unwrap();
        assert!((blurred - 0.25).abs().max().double_value(&[]) < 1e-6);
        let point = Tensor::zeros([1, 1, 9, 9], (Kind::Float, Device::Cpu));
        let _ = point.get(0).get(0).get(4).get(4).fill_(1.0);
        let spread = gaussian_blur(&point, 1.0).unwrap();
        assert!((spread.sum(Kind::Float).double_value(&[]) - 1.0).abs() < 1e-4);
        assert!(spread.double_value(&[0, 0, 4, 4]) < 0.2);
        assert!(spread.double_value(&[0, 0, 4, 5]) > 0.05);
    }

    #[test]
    fn sobel_finds_a_vertical_edge() {
        let step = Tensor::cat(
            &[
                Tensor::zeros([1, 1, 6, 3], (Kind::Float, Device::Cpu)),
                Tensor::ones([1, 1, 6, 3], (Kind::Float, Device::Cpu)),
            ],
            3,
        );
        let edges = sobel_magnitude(&step).unwrap();
        for row in 0..6 {
            assert_eq!(edges[row * 6], 0.0);
            assert!(edges[row * 6 + 2] > 3.9 && edges[row * 6 + 3] > 3.9);
            assert_eq!(edges[row * 6 + 5], 0.0);
        }
    }
}
