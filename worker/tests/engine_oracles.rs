//! Oracle tests of the engine: tiny hand-built models whose evidence can be
//! computed by hand, run through the real loop (real tch tensors, real
//! batching).
//!
//! - `region_model_*`: logit of class 0 is a x (sum of a fixed region), class 1
//!   is 0; evidence is exactly zero for windows that miss the region, and
//!   efficient PDA's map matches the hand-computed one.
//! - `pda_equals_efficient_when_every_sample_is_the_mean`
//! - `same_seed_same_map_bit_for_bit`, `batch_size_never_changes_the_map`
//! - `tiles_are_final_and_cover_the_image_once`, `cancellation_stops_within_one_batch`

use std::ops::ControlFlow;

use lens_worker::engine::{
    coverage, explain, windows, Classifier, EfficientPda, EngineError, ExplainParams, InputImage,
    InputShape, Laplace, MarginalSampler, Pda, Progress, Rect, Target,
};
use tch::{Device, Kind, Tensor};

const SHAPE: InputShape = InputShape {
    channels: 1,
    height: 12,
    width: 12,
};
const TRAINING_IMAGES: usize = 100;

/// Two classes; logit 0 = gain * (sum of the region), logit 1 = 0.
struct RegionModel {
    region: Rect,
    gain: f64,
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
    fn probabilities(&self, batch: &Tensor) -> Tensor {
        let r = self.region;
        let region_sum = batch
            .narrow(2, r.y as i64, r.height as i64)
            .narrow(3, r.x as i64, r.width as i64)
            .sum_dim_intlist([1i64, 2, 3].as_slice(), false, Kind::Double);
        let logit0 = region_sum * self.gain;
        let logits = Tensor::stack(&[logit0.shallow_clone(), logit0.zeros_like()], 1);
        logits.softmax(-1, Kind::Double).to_kind(Kind::Float)
    }
}

/// A small convolutional model with fixed pseudo-random weights, to check
/// batching on a real network.
struct ConvModel {
    weight: Tensor,
    bias: Tensor,
    head: Tensor,
}

impl ConvModel {
    fn new() -> Self {
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
    fn probabilities(&self, batch: &Tensor) -> Tensor {
        batch
            .conv2d(&self.weight, Some(&self.bias), [1, 1], [1, 1], [1, 1], 1)
            .relu()
            .max_pool2d_default(2)
            .flatten(1, -1)
            .matmul(&self.head)
            .softmax(-1, Kind::Float)
    }
}

fn test_image() -> InputImage {
    InputImage {
        shape: SHAPE,
        values: (0..SHAPE.values())
            .map(|i| ((i * 37) % 11) as f32 / 10.0)
            .collect(),
    }
}

/// Training images with varied content (a ramp shifted per image).
fn varied_sampler(count: usize) -> MarginalSampler {
    let values = (0..count)
        .flat_map(|n| (0..SHAPE.values()).map(move |i| (((i + 7 * n) % 13) as f32) / 12.0))
        .collect();
    MarginalSampler::new(SHAPE, values)
}

fn params(window: usize, stride: usize, batch_size: usize) -> ExplainParams {
    ExplainParams {
        window,
        stride,
        batch_size,
        tile_size: 4,
        seed: 7,
        target: Target::Class(0),
    }
}

fn no_progress(_: Progress) -> ControlFlow<()> {
    ControlFlow::Continue(())
}

#[test]
fn region_model_gives_zero_evidence_away_from_the_region() {
    let region = Rect {
        x: 5,
        y: 4,
        width: 3,
        height: 2,
    };
    let model = RegionModel { region, gain: 0.7 };
    let sampler = varied_sampler(20);
    for (window, stride) in [(2, 1), (3, 2), (4, 4)] {
        let fill = Pda {
            sampler: &sampler,
            samples: 6,
        };
        let result = explain(
            &model,
            &test_image(),
            &fill,
            &params(window, stride, 16),
            &mut no_progress,
        )
        .unwrap();
        let all = windows(SHAPE.height, SHAPE.width, window, stride);
        for y in 0..SHAPE.height {
            for x in 0..SHAPE.width {
                let pixel = Rect {
                    x,
                    y,
                    width: 1,
                    height: 1,
                };
                let touches = all
                    .iter()
                    .any(|w| w.overlaps(&pixel) && w.overlaps(&region));
                let value = result.map()[y * SHAPE.width + x];
                if !touches {
                    assert_eq!(value, 0.0, "k={window} s={stride} pixel ({x},{y})");
                }
            }
        }
        // Inside the region the samples do change the prediction.
        assert!(result.map()[5 * SHAPE.width + 6].abs() > 1e-3);
    }
}

#[test]
fn region_model_efficient_pda_matches_the_hand_computed_map() {
    let region = Rect {
        x: 3,
        y: 3,
        width: 4,
        height: 5,
    };
    let gain = 0.3;
    let model = RegionModel { region, gain };
    let sampler = varied_sampler(9);
    let image = test_image();
    let (window, stride) = (3, 2);
    let result = explain(
        &model,
        &image,
        &EfficientPda { sampler: &sampler },
        &params(window, stride, 5),
        &mut no_progress,
    )
    .unwrap();

    // By hand: P(0 | x) = sigmoid(gain * region sum); replacing a window by
    // the mean changes the region sum by (mean - x) over their overlap.
    let laplace = Laplace {
        training_images: TRAINING_IMAGES,
        classes: 2,
    };
    let sigmoid = |z: f64| 1.0 / (1.0 + (-z).exp());
    let at = |values: &[f32], x: usize, y: usize| values[y * SHAPE.width + x] as f64;
    let region_sum: f64 = (region.y..region.y + region.height)
        .flat_map(|y| (region.x..region.x + region.width).map(move |x| (x, y)))
        .map(|(x, y)| at(&image.values, x, y))
        .sum();
    let p_x = sigmoid(gain * region_sum);
    let all = windows(SHAPE.height, SHAPE.width, window, stride);
    let counts = coverage(SHAPE.height, SHAPE.width, &all);
    let mut expected = vec![0f64; SHAPE.pixels()];
    for w in &all {
        let mut sum = region_sum;
        for y in w.y..w.y + w.size {
            for x in w.x..w.x + w.size {
                let inside = (region.x..region.x + region.width).contains(&x)
                    && (region.y..region.y + region.height).contains(&y);
                if inside {
                    sum += at(sampler.mean(), x, y) - at(&image.values, x, y);
                }
            }
        }
        let evidence = laplace.weight_of_evidence(p_x, sigmoid(gain * sum));
        for y in w.y..w.y + w.size {
            for x in w.x..w.x + w.size {
                expected[y * SHAPE.width + x] += evidence;
            }
        }
    }
    for (i, e) in expected.iter().enumerate() {
        let e = e / counts[i] as f64;
        let got = result.map()[i] as f64;
        assert!((got - e).abs() < 1e-5, "pixel {i}: {got} vs {e}");
    }
    assert!(expected.iter().any(|e| e.abs() > 0.01));
}

#[test]
fn pda_equals_efficient_when_every_sample_is_the_mean() {
    let model = ConvModel::new();
    // Every training image is the same, so every sample equals the mean.
    let one: Vec<f32> = (0..SHAPE.values()).map(|i| (i % 5) as f32 / 4.0).collect();
    let sampler = MarginalSampler::new(SHAPE, one.repeat(8));
    let p = params(3, 1, 32);
    let pda = explain(
        &model,
        &test_image(),
        &Pda {
            sampler: &sampler,
            samples: 5,
        },
        &p,
        &mut no_progress,
    )
    .unwrap();
    let efficient = explain(
        &model,
        &test_image(),
        &EfficientPda { sampler: &sampler },
        &p,
        &mut no_progress,
    )
    .unwrap();
    assert_eq!(pda.forward_passes - 1, 5 * (efficient.forward_passes - 1));
    for class in 0..3 {
        for (a, b) in pda.maps[class].iter().zip(&efficient.maps[class]) {
            assert!((a - b).abs() < 1e-5, "class {class}: {a} vs {b}");
        }
    }
    assert!(efficient.map().iter().any(|v| v.abs() > 1e-4));
}

#[test]
fn same_seed_same_map_bit_for_bit() {
    let model = ConvModel::new();
    let sampler = varied_sampler(30);
    let run = |seed| {
        let fill = Pda {
            sampler: &sampler,
            samples: 4,
        };
        let p = ExplainParams {
            seed,
            ..params(3, 1, 24)
        };
        explain(&model, &test_image(), &fill, &p, &mut no_progress).unwrap()
    };
    let (a, b, other) = (run(11), run(11), run(12));
    assert_eq!(a.maps, b.maps);
    assert_ne!(
        a.maps, other.maps,
        "a different seed draws different samples"
    );
}

#[test]
fn batch_size_never_changes_the_map() {
    let model = ConvModel::new();
    let sampler = varied_sampler(30);
    let fill = Pda {
        sampler: &sampler,
        samples: 3,
    };
    let maps: Vec<_> = [1, 3, 64]
        .into_iter()
        .map(|batch| {
            explain(
                &model,
                &test_image(),
                &fill,
                &params(4, 2, batch),
                &mut no_progress,
            )
            .unwrap()
            .maps
        })
        .collect();
    for other in &maps[1..] {
        for (a, b) in maps[0].iter().flatten().zip(other.iter().flatten()) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }
}

#[test]
fn tiles_are_final_and_cover_the_image_once() {
    let model = ConvModel::new();
    let sampler = varied_sampler(10);
    let mut seen = vec![0u32; SHAPE.pixels()];
    let mut tile_values = vec![f32::NAN; SHAPE.pixels()];
    let mut batches = 0;
    let result = explain(
        &model,
        &test_image(),
        &EfficientPda { sampler: &sampler },
        &params(3, 1, 7),
        &mut |progress| {
            if let Progress::Batch { tiles, .. } = progress {
                batches += 1;
                for tile in tiles {
                    let r = tile.rect;
                    for y in r.y..r.y + r.height {
                        for x in r.x..r.x + r.width {
                            seen[y * SHAPE.width + x] += 1;
                            tile_values[y * SHAPE.width + x] =
                                tile.values[(y - r.y) * r.width + (x - r.x)];
                        }
                    }
                }
            }
            ControlFlow::Continue(())
        },
    )
    .unwrap();
    assert!(seen.iter().all(|&n| n == 1));
    assert_eq!(tile_values, result.map());
    assert_eq!(batches, 100usize.div_ceil(7));
}

#[test]
fn cancellation_stops_within_one_batch() {
    let model = ConvModel::new();
    let sampler = varied_sampler(10);
    let mut batches = 0;
    let outcome = explain(
        &model,
        &test_image(),
        &EfficientPda { sampler: &sampler },
        &params(2, 1, 4),
        &mut |progress| {
            if let Progress::Batch { .. } = progress {
                batches += 1;
                if batches == 2 {
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        },
    );
    assert!(matches!(outcome, Err(EngineError::Cancelled)));
    assert_eq!(batches, 2);
}

#[test]
fn bad_parameters_are_refused_with_reasons() {
    let model = ConvModel::new();
    let sampler = varied_sampler(4);
    let run = |p: ExplainParams, samples| {
        explain(
            &model,
            &test_image(),
            &Pda {
                sampler: &sampler,
                samples,
            },
            &p,
            &mut no_progress,
        )
        .unwrap_err()
        .to_string()
    };
    assert!(run(params(13, 1, 8), 2).contains("window 13 x 13 does not fit"));
    assert!(run(params(3, 4, 8), 2).contains("stride"));
    assert!(run(params(3, 1, 8), 0).contains("samples must be at least 1"));
    let p = ExplainParams {
        target: Target::Class(3),
        ..params(3, 1, 8)
    };
    assert!(run(p, 2).contains("class 3 does not exist"));
}
