//! Oracles for the few-pass estimators of PDA (`engine::few_pass`) through
//! the whole explain loop, on a synthetic Gaussian and a model whose class
//! probability is linear in the pixels: there PDA's expectation is the
//! probability at the conditional mean, which a pair of opposite draws
//! gives exactly and independent draws only on average.
//!
//! - `independent_design_is_pda_itself`
//! - `pairs_and_sigma_pairs_are_exact_where_evidence_is_linear`
//! - `a_design_refuses_a_pass_count_it_cannot_use`
//! - `sample_weights_decide_the_average`: a fill whose weights keep only
//!   its first sample (the conditional mean) gives efficient PDA's map.

use std::sync::Arc;

use lens_engine::engine::{
    explain, Classifier, ConditionalGaussian, ConditionalMean, ConditionalPda, Design, DesignedPda,
    DeviceInput, EngineError, ExplainParams, InputImage, InputShape, MapClasses, PatchStatistics,
    Quantity, Schedule, Target, Window, WindowFill,
};
use tch::{Device, Kind, TchError, Tensor};

const SHAPE: InputShape = InputShape {
    channels: 2,
    height: 7,
    width: 8,
};

/// P(class 0 | x) = 0.5 + (sum of x) / 1000: linear in every pixel
/// (logits ln p and ln(1 - p), whose softmax is p again).
struct LinearProbability;

impl Classifier for LinearProbability {
    fn input_shape(&self) -> InputShape {
        SHAPE
    }
    fn num_classes(&self) -> usize {
        2
    }
    fn training_images(&self) -> usize {
        1000
    }
    fn device(&self) -> Device {
        Device::Cpu
    }
    fn logits(&self, batch: &Tensor) -> Result<Tensor, TchError> {
        let p = batch.sum_dim_intlist([1i64, 2, 3].as_slice(), false, Kind::Double) / 1000.0 + 0.5;
        let q = p.ones_like() - &p;
        Ok(Tensor::stack(&[p.log(), q.log()], 1).to_kind(Kind::Float))
    }
}

/// 3 x 3 patches (window 1, ring 1) of 2 channels; Sigma = B B^T + 0.5 I.
fn gaussian() -> Arc<ConditionalGaussian> {
    let d = 2 * 3 * 3;
    let b: Vec<f64> = (0..d * d)
        .map(|i| (((i * 7919 + 13) % 97) as f64 / 97.0 - 0.5) * 0.6)
        .collect();
    let covariance = (0..d * d)
        .map(|ij| {
            let (i, j) = (ij / d, ij % d);
            (0..d).map(|k| b[i * d + k] * b[j * d + k]).sum::<f64>()
                + if i == j { 0.5 } else { 0.0 }
        })
        .collect();
    let stats = PatchStatistics {
        channels: 2,
        side: 3,
        patches: 1000,
        mean: (0..d).map(|i| 0.05 * (i % 7) as f64).collect(),
        covariance,
    };
    // A wide range: no clipping, so the draws are exactly Gaussian.
    Arc::new(ConditionalGaussian::new(stats, 1, (-1e9, 1e9), 0.0).unwrap())
}

fn image() -> InputImage {
    InputImage {
        shape: SHAPE,
        values: (0..SHAPE.values())
            .map(|i| ((i * 31) % 17) as f32 / 17.0)
            .collect(),
    }
}

fn map(fill: &dyn WindowFill) -> Vec<f32> {
    let params = ExplainParams {
        window: 1,
        stride: 1,
        batch_size: 12,
        tile_size: 4,
        seed: 3,
        target: Target::Class(0),
        quantity: Quantity::LogOdds,
        maps: MapClasses::Classes(Vec::new()),
        schedule: Schedule::Plain,
        takeover: Default::default(),
        budget: 1.0,
    };
    explain(&LinearProbability, &image(), fill, &params, &mut |_| {
        std::ops::ControlFlow::Continue(())
    })
    .unwrap()
    .map()
    .to_vec()
}

fn largest_difference(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn independent_design_is_pda_itself() {
    let designed = DesignedPda::new(gaussian(), 4, Design::Independent).unwrap();
    let pda = ConditionalPda {
        gaussian: gaussian(),
        samples: 4,
    };
    assert_eq!(map(&designed), map(&pda));
}

#[test]
fn pairs_and_sigma_pairs_are_exact_where_evidence_is_linear() {
    let at_the_mean = map(&ConditionalMean {
        gaussian: gaussian(),
    });
    for (design, samples) in [
        (Design::Antithetic, 2),
        (Design::OrthogonalPairs, 4),
        (Design::SigmaPairs, 3),
        (Design::SigmaPairs, 5),
    ] {
        let designed = map(&DesignedPda::new(gaussian(), samples, design).unwrap());
        let off = largest_difference(&designed, &at_the_mean);
        assert!(off < 1e-4, "{design:?} S = {samples}: {off}");
    }
    // Independent draws and a Latin hypercube are right only on average.
    for design in [Design::Independent, Design::LatinHypercube] {
        let designed = map(&DesignedPda::new(gaussian(), 2, design).unwrap());
        let off = largest_difference(&designed, &at_the_mean);
        assert!(off > 1e-3, "{design:?}: {off}");
    }
}

#[test]
fn a_design_refuses_a_pass_count_it_cannot_use() {
    for (design, samples) in [
        (Design::Antithetic, 3),
        (Design::OrthogonalPairs, 1),
        (Design::SigmaPairs, 4),
        (Design::SigmaPairs, 1),
    ] {
        let refused = DesignedPda::new(gaussian(), samples, design).err().unwrap();
        assert!(
            refused
                .to_string()
                .contains(&format!("cannot use {samples} passes")),
            "{refused}"
        );
    }
}

/// The conditional mean, then two far-off fills (which the plain mean
/// would count), weighted 1, 0, 0.
struct MeanFirst(ConditionalMean);

impl WindowFill for MeanFirst {
    fn samples_per_window(&self) -> usize {
        3
    }
    fn fill_batch(
        &self,
        input: &DeviceInput,
        windows: &[Window],
        seed: u64,
    ) -> Result<Tensor, EngineError> {
        let mean = self.0.fill_batch(input, windows, seed)?;
        let far = mean.ones_like() * 40.0;
        Ok(Tensor::stack(&[&mean, &far, &far], 1).view([windows.len() as i64 * 3, -1]))
    }
    fn sample_weights(&self) -> Option<Vec<f64>> {
        Some(vec![1.0, 0.0, 0.0])
    }
}

#[test]
fn sample_weights_decide_the_average() {
    let mean = ConditionalMean {
        gaussian: gaussian(),
    };
    let at_the_mean = map(&mean);
    let weighted = map(&MeanFirst(ConditionalMean {
        gaussian: gaussian(),
    }));
    assert!(largest_difference(&weighted, &at_the_mean) < 1e-6);
}
