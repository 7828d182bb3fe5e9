//! Tiny hand-built models and inputs shared by the engine's oracle tests.
#![allow(dead_code)]

use std::ops::ControlFlow;

use lens_engine::engine::{
    Classifier, EfficientPda, ExplainParams, InputImage, InputShape, MapClasses, MarginalSampler,
    Occlusion, Pda, Progress, Quantity, Rect, SampledMean, Schedule, Target, WindowFill,
};
use tch::{Device, Kind, Tensor};

pub const SHAPE: InputShape = InputShape {
    channels: 1,
    height: 12,
    width: 12,
};
pub const TRAINING_IMAGES: usize = 100;

/// Two classes; logit 0 = gain * (sum of the region), logit 1 = 0.
pub struct RegionModel {
    pub region: Rect,
    pub gain: f64,
}

impl Classifier for RegionModel {
    fn input_shape(&self) -> InputShape {
        SHAPE
    }
    fn num_classes(&self) -> usize {
        2
    }
    fn training_images(&self) -> usize {
        TRAINING_IMAGES
    }
    fn device(&self) -> Device {
        Device::Cpu
    }
    fn logits(&self, batch: &Tensor) -> Result<Tensor, tch::TchError> {
        let r = self.region;
        let region_sum = batch
            .narrow(2, r.y as i64, r.height as i64)
            .narrow(3, r.x as i64, r.width as i64)
            .sum_dim_intlist([1i64, 2, 3].as_slice(), false, Kind::Double);
        let logit0 = region_sum * self.gain;
        Ok(Tensor::stack(&[logit0.shallow_clone(), logit0.zeros_like()], 1).to_kind(Kind::Float))
    }
}

/// A small convolutional model with fixed pseudo-random weights, to check
/// batching on a real network.
pub struct ConvModel {
    weight: Tensor,
    bias: Tensor,
    head: Tensor,
}

impl ConvModel {
    pub fn new() -> Self {
        let values = |n: usize, salt: u64| -> Vec<f32> {
            (0..n as u64)
                .map(|i| {
                    let h = (i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt;
                    ((h >> 40) as f32 / (1u64 << 24) as f32) - 0.5
                })
                .collect()
        };
        ConvModel {
            weight: Tensor::from_slice(&values(4 * 9, 1)).view([4, 1, 3, 3]),
            bias: Tensor::from_slice(&values(4, 2)),
            head: Tensor::from_slice(&values(4 * 6 * 6 * 3, 3)).view([4 * 6 * 6, 3]),
        }
    }
}

impl Classifier for ConvModel {
    fn input_shape(&self) -> InputShape {
        SHAPE
    }
    fn num_classes(&self) -> usize {
        3
    }
    fn training_images(&self) -> usize {
        TRAINING_IMAGES
    }
    fn device(&self) -> Device {
        Device::Cpu
    }
    /// Image by image: BLAS picks its kernel by the batch's size, and a
    /// batch of one (a vector product) rounds differently from a batch of
    /// three, which would hide what the tests check (the engine's batching).
    fn logits(&self, batch: &Tensor) -> Result<Tensor, tch::TchError> {
        let one_by_one = batch
            .f_split(1, 0)?
            .iter()
            .map(|image| {
                image
                    .f_conv2d(&self.weight, Some(&self.bias), [1, 1], [1, 1], [1, 1], 1)?
                    .f_relu()?
                    .max_pool2d_default(2)
                    .f_flatten(1, -1)?
                    .f_matmul(&self.head)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Tensor::f_cat(&one_by_one, 0)
    }
}

pub fn test_image() -> InputImage {
    InputImage {
        shape: SHAPE,
        values: (0..SHAPE.values())
            .map(|i| ((i * 37) % 11) as f32 / 10.0)
            .collect(),
    }
}

/// Training images with varied content (a ramp shifted per image).
pub fn varied_sampler(count: usize) -> MarginalSampler {
    let values = (0..count)
        .flat_map(|n| (0..SHAPE.values()).map(move |i| (((i + 7 * n) % 13) as f32) / 12.0))
        .collect();
    MarginalSampler::new(SHAPE, values)
}

pub fn params(window: usize, stride: usize, batch_size: usize) -> ExplainParams {
    ExplainParams {
        window,
        stride,
        batch_size,
        tile_size: 4,
        seed: 7,
        target: Target::Class(0),
        quantity: Quantity::LogOdds,
        maps: MapClasses::All,
        schedule: Schedule::Plain,
        takeover: Default::default(),
        budget: 1.0,
    }
}

pub fn no_progress(_: Progress) -> ControlFlow<()> {
    ControlFlow::Continue(())
}

/// Three classes with logits W x + b: linear in the input.
pub struct LinearModel {
    /// `[3, C * H * W]`.
    pub weight: Tensor,
    bias: Tensor,
}

impl LinearModel {
    pub fn new() -> Self {
        let values = |n: usize, salt: u64| -> Vec<f32> {
            (0..n as u64)
                .map(|i| (((i * 7919 + salt) % 101) as f32 / 101.0 - 0.5) * 0.4)
                .collect()
        };
        LinearModel {
            weight: Tensor::from_slice(&values(3 * SHAPE.values(), 3))
                .view([3, SHAPE.values() as i64]),
            bias: Tensor::from_slice(&[0.1f32, -0.2, 0.05]),
        }
    }
}

impl Classifier for LinearModel {
    fn input_shape(&self) -> InputShape {
        SHAPE
    }
    fn num_classes(&self) -> usize {
        3
    }
    fn training_images(&self) -> usize {
        TRAINING_IMAGES
    }
    fn device(&self) -> Device {
        Device::Cpu
    }
    fn logits(&self, batch: &Tensor) -> Result<Tensor, tch::TchError> {
        batch
            .flatten(1, -1)
            .f_matmul(&self.weight.tr())?
            .f_add(&self.bias)
    }
}

/// Calls `check` with the window fill of every window method (PDA, the
/// sampled mean, efficient PDA with the marginal sampler, occlusion).
pub fn with_every_window_fill(check: &dyn Fn(&str, &dyn WindowFill)) {
    let sampler = varied_sampler(30);
    let pda = Pda {
        sampler: &sampler,
        samples: 3,
    };
    let sampled_mean = SampledMean {
        draws: Pda {
            sampler: &sampler,
            samples: 4,
        },
    };
    let efficient = EfficientPda { sampler: &sampler };
    let occlusion = Occlusion { value: 0.5 };
    let fills: [(&str, &dyn WindowFill); 4] = [
        ("pda", &pda),
        ("sampled mean", &sampled_mean),
        ("efficient pda", &efficient),
        ("occlusion", &occlusion),
    ];
    for (name, fill) in fills {
        check(name, fill);
    }
}
