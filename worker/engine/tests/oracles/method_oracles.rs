//! Oracles for the methods beyond PDA and efficient PDA, on hand-built models.
//!
//! - `gradient_equals_efficient_pda_logit_difference_on_a_linear_model`
//! - `sampled_mean_approaches_efficient_pda_as_samples_grow`
//! - `occlusion_gives_the_hand_computed_drop_in_probability`
//! - `saliency_of_a_linear_model_is_its_largest_weight_per_pixel`
//! - `grad_cam_of_a_pooled_linear_head_is_the_hand_computed_map`

use crate::common;

use common::*;
use lens_engine::engine::{
    coverage, explain, gradcam_explain, gradient_explain, saliency_explain, windows, Classifier,
    EfficientPda, ExplainParams, InputImage, InputShape, Occlusion, Pda, Quantity, Rect,
    SampledMean,
};

fn max_abs_difference(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn gradient_equals_efficient_pda_logit_difference_on_a_linear_model() {
    let model = LinearModel::new();
    let sampler = varied_sampler(9);
    let fill = EfficientPda { sampler: &sampler };
    for (window, stride) in [(3, 1), (4, 2), (12, 1)] {
        let p = ExplainParams {
            quantity: Quantity::Logit,
            ..params(window, stride, 16)
        };
        let efficient = explain(&model, &test_image(), &fill, &p, &mut no_progress).unwrap();
        let gradient =
            gradient_explain(&model, &test_image(), &fill, &p, &mut no_progress).unwrap();
        assert_eq!(gradient.forward_passes, 1);
        let scale = efficient.map().iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(scale > 0.01, "a non-trivial map");
        let diff = max_abs_difference(efficient.map(), gradient.map());
        assert!(diff < 1e-4 * scale.max(1.0), "k={window}: differ by {diff}");
    }
}

#[test]
fn sampled_mean_approaches_efficient_pda_as_samples_grow() {
    let model = LinearModel::new();
    let sampler = varied_sampler(13);
    let p = ExplainParams {
        quantity: Quantity::Logit,
        ..params(3, 1, 32)
    };
    let efficient = explain(
        &model,
        &test_image(),
        &EfficientPda { sampler: &sampler },
        &p,
        &mut no_progress,
    )
    .unwrap();
    let error = |samples| {
        let fill = SampledMean {
            draws: Pda {
                sampler: &sampler,
                samples,
            },
        };
        let sampled = explain(&model, &test_image(), &fill, &p, &mut no_progress).unwrap();
        assert_eq!(
            sampled.forward_passes, efficient.forward_passes,
            "one pass per window"
        );
        max_abs_difference(sampled.map(), efficient.map())
    };
    let (few, many, lots) = (error(2), error(64), error(2048));
    let scale = efficient.map().iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(many < few && lots < many, "{few} > {many} > {lots}");
    assert!(lots < 0.1 * scale, "{lots} vs map scale {scale}");
}

#[test]
fn occlusion_gives_the_hand_computed_drop_in_probability() {
    let region = Rect {
        x: 2,
        y: 5,
        width: 5,
        height: 3,
    };
    let gain = 0.4;
    let model = RegionModel { region, gain };
    let image = test_image();
    let (window, stride, grey) = (4, 2, 0.5f64);
    let p = ExplainParams {
        quantity: Quantity::Probability,
        ..params(window, stride, 8)
    };
    let occlusion = explain(
        &model,
        &image,
        &Occlusion { value: grey as f32 },
        &p,
        &mut no_progress,
    )
    .unwrap();

    // By hand: P(0 | x) = sigmoid(gain * region sum); the grey window changes
    // the region sum by (0.5 - x) over their overlap.
    let sigmoid = |z: f64| 1.0 / (1.0 + (-z).exp());
    let pixel = |x: usize, y: usize| image.values[y * SHAPE.width + x] as f64;
    let inside = |x: usize, y: usize| {
        (region.x..region.x + region.width).contains(&x)
            && (region.y..region.y + region.height).contains(&y)
    };
    let region_sum: f64 = (0..SHAPE.height)
        .flat_map(|y| (0..SHAPE.width).map(move |x| (x, y)))
        .filter(|&(x, y)| inside(x, y))
        .map(|(x, y)| pixel(x, y))
        .sum();
    let all = windows(SHAPE.height, SHAPE.width, window, stride);
    let counts = coverage(SHAPE.height, SHAPE.width, &all);
    let mut expected = vec![0f64; SHAPE.pixels()];
    for w in &all {
        let mut sum = region_sum;
        for y in w.y..w.y + w.size {
            for x in w.x..w.x + w.size {
                if inside(x, y) {
                    sum += grey - pixel(x, y);
                }
            }
        }
        let drop = sigmoid(gain * region_sum) - sigmoid(gain * sum);
        for y in w.y..w.y + w.size {
            for x in w.x..w.x + w.size {
                expected[y * SHAPE.width + x] += drop;
            }
        }
    }
    for (i, e) in expected.iter().enumerate() {
        let e = e / counts[i] as f64;
        let got = occlusion.map()[i] as f64;
        assert!((got - e).abs() < 1e-6, "pixel {i}: {got} vs {e}");
    }
    assert!(expected.iter().any(|e| e.abs() > 0.01));
}

#[test]
fn saliency_of_a_linear_model_is_its_largest_weight_per_pixel() {
    let model = LinearModel::new();
    let p = ExplainParams {
        quantity: Quantity::Logit,
        target: lens_engine::engine::Target::Class(1),
        ..params(3, 1, 8)
    };
    let saliency = saliency_explain(&model, &test_image(), &p, &mut no_progress).unwrap();
    // d z_1 / dx = W[1], whatever x is.
    let weights = Vec::<f32>::try_from(model.weight.get(1)).unwrap();
    for i in 0..SHAPE.pixels() {
        let expected = (0..SHAPE.channels)
            .map(|c| weights[c * SHAPE.pixels() + i].abs())
            .fold(0.0, f32::max);
        assert!((saliency.map()[i] - expected).abs() < 1e-6, "pixel {i}");
    }
    assert_eq!(saliency.explained, 1);
}

/// Features = the input itself (two channels); head = global average pooling
/// and a linear layer, logits_c = sum_k W[c][k] mean(x_k).
struct PooledLinear {
    weight: [[f32; 2]; 3],
}

const TWO_CHANNELS: InputShape = InputShape {
    channels: 2,
    height: 6,
    width: 5,
};

impl Classifier for PooledLinear {
    fn input_shape(&self) -> InputShape {
        TWO_CHANNELS
    }
    fn num_classes(&self) -> usize {
        3
    }
    fn training_images(&self) -> usize {
        TRAINING_IMAGES
    }
    fn device(&self) -> tch::Device {
        tch::Device::Cpu
    }
    fn features(&self, batch: &tch::Tensor) -> Result<Option<tch::Tensor>, tch::TchError> {
        Ok(Some(batch.shallow_clone()))
    }
    fn head(&self, features: &tch::Tensor) -> Result<Option<tch::Tensor>, tch::TchError> {
        let w: Vec<f32> = self.weight.iter().flatten().copied().collect();
        let w = tch::Tensor::from_slice(&w).view([3, 2]);
        let pooled = features.mean_dim([2i64, 3].as_slice(), false, tch::Kind::Float);
        Ok(Some(pooled.matmul(&w.tr())))
    }
    fn logits(&self, batch: &tch::Tensor) -> Result<tch::Tensor, tch::TchError> {
        Ok(self.head(batch)?.expect("this model exposes its head"))
    }
}

#[test]
fn grad_cam_of_a_pooled_linear_head_is_the_hand_computed_map() {
    let model = PooledLinear {
        weight: [[1.0, -2.0], [0.5, 0.25], [-1.0, 3.0]],
    };
    let s = TWO_CHANNELS;
    let image = InputImage {
        shape: s,
        values: (0..s.values())
            .map(|i| ((i * 13) % 7) as f32 / 6.0)
            .collect(),
    };
    for class in 0..3 {
        let p = ExplainParams {
            target: lens_engine::engine::Target::Class(class),
            ..params(1, 1, 8)
        };
        let cam = gradcam_explain(&model, &image, &p, &mut no_progress).unwrap();
        // d z_c / d A_k(i) = W[c][k] / (h w) everywhere, so the channel weight
        // is W[c][k] / (h w) and the map is ReLU(sum_k W[c][k] A_k / (h w)).
        for i in 0..s.pixels() {
            let sum: f32 = (0..2)
                .map(|k| model.weight[class][k] * image.values[k * s.pixels() + i])
                .sum();
            let expected = (sum / s.pixels() as f32).max(0.0);
            assert!(
                (cam.map()[i] - expected).abs() < 1e-6,
                "class {class} pixel {i}"
            );
        }
    }
}
