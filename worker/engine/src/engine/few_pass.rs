//! Few-pass estimators of PDA's expectation with the conditional sampler.
//!
//! PDA averages P(c | x with the window drawn from N(mu, L L^T)) over S
//! independent draws mu + L z. Efficient PDA puts mu itself through the
//! network once, which misses the curvature of P around mu (Jensen's gap).
//! The designs here choose the S standard-normal vectors z (and, for sigma
//! pairs, the weights of the S outputs) so that few passes land nearer the
//! expectation than S independent draws:
//!
//! - antithetic pairs: z and -z; a pair cancels every odd term of P's
//!   expansion around mu, the first-order term included;
//! - Latin hypercube: each coordinate of z stratified over the S samples
//!   (one draw from each 1/S quantile band), a quasi-random design;
//! - orthogonal pairs: antithetic pairs along mutually orthogonal directions
//!   (each keeps its own length, so each draw is still N(0, I));
//! - sigma pairs: the conditional mean pass (weight 1 - 1/a^2) and pairs
//!   mu +- a L z (weight 1/(2 a^2) per pair point, over the pairs): the
//!   mean pass carries the value, the pairs its second-order correction, as
//!   in the unscented transform.
//!
//! Every draw comes from the window's own stream (`draws::window_stream`),
//! so a map does not depend on the batch.

use std::sync::Arc;

use rand::seq::SliceRandom;
use rand::Rng;
use tch::{Device, Tensor};

use super::device::upload;
use super::draws::{standard_normal, window_stream};
use super::error::EngineError;
use super::fill::WindowFill;
use super::gaussian::ConditionalGaussian;
use super::perturb::DeviceInput;
use super::windows::Window;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Design {
    /// S independent draws: PDA itself (the same draws as `ConditionalPda`).
    Independent,
    Antithetic,
    LatinHypercube,
    OrthogonalPairs,
    SigmaPairs,
}

/// How far sigma pairs reach: mu +- a L z. With a^2 = 2 the mean pass and
/// the pairs weigh one half each.
pub const SIGMA_SCALE: f64 = std::f64::consts::SQRT_2;

impl Design {
    pub const ALL: [Design; 5] = [
        Design::Independent,
        Design::Antithetic,
        Design::LatinHypercube,
        Design::OrthogonalPairs,
        Design::SigmaPairs,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Design::Independent => "independent (PDA)",
            Design::Antithetic => "antithetic pairs",
            Design::LatinHypercube => "Latin hypercube",
            Design::OrthogonalPairs => "orthogonal pairs",
            Design::SigmaPairs => "sigma pairs",
        }
    }

    /// Whether the design works with `samples` passes per window: pairs
    /// need an even count, sigma pairs the mean pass and at least one pair.
    pub fn fits(self, samples: usize) -> bool {
        match self {
            Design::Independent | Design::LatinHypercube => samples >= 1,
            Design::Antithetic | Design::OrthogonalPairs => {
                samples >= 2 && samples.is_multiple_of(2)
            }
            Design::SigmaPairs => samples >= 3 && !samples.is_multiple_of(2),
        }
    }

    /// The standard-normal coordinates of every window's samples,
    /// `[B * S, n]` f64 on `device` (a window's S rows together).
    pub fn normals(
        self,
        seed: u64,
        windows: &[Window],
        samples: usize,
        n: usize,
        device: Device,
    ) -> Tensor {
        let mut values = Vec::with_capacity(windows.len() * samples * n);
        for &window in windows {
            let mut rng = window_stream(seed, window);
            let mut normal = || standard_normal(&mut rng);
            match self {
                Design::Independent => values.extend((0..samples * n).map(|_| normal())),
                Design::Antithetic => {
                    for _ in 0..samples / 2 {
                        let z: Vec<f64> = (0..n).map(|_| normal()).collect();
                        push_pair(&mut values, &z, 1.0);
                    }
                }
                Design::OrthogonalPairs => {
                    for z in orthogonal(samples / 2, n, &mut normal) {
                        push_pair(&mut values, &z, 1.0);
                    }
                }
                Design::SigmaPairs => {
                    values.extend(std::iter::repeat_n(0.0, n));
                    for z in orthogonal(samples / 2, n, &mut normal) {
                        push_pair(&mut values, &z, SIGMA_SCALE);
                    }
                }
                Design::LatinHypercube => {
                    let start = values.len();
                    values.resize(start + samples * n, 0.0);
                    let mut bands: Vec<usize> = (0..samples).collect();
                    for i in 0..n {
                        bands.shuffle(&mut rng);
                        for (s, &band) in bands.iter().enumerate() {
                            // A uniform in the band; the quantile comes below.
                            values[start + s * n + i] =
                                (band as f64 + rng.random::<f64>()) / samples as f64;
                        }
                    }
                }
            }
        }
        let z = upload(&values, device).view([(windows.len() * samples) as i64, n as i64]);
        match self {
            // The standard normal quantile: sqrt(2) erfinv(2u - 1).
            Design::LatinHypercube => (z * 2.0 - 1.0).erfinv() * std::f64::consts::SQRT_2,
            _ => z,
        }
    }

    /// The weights of a window's S outputs, `None` for the plain mean.
    pub fn weights(self, samples: usize) -> Option<Vec<f64>> {
        (self == Design::SigmaPairs).then(|| {
            let a2 = SIGMA_SCALE * SIGMA_SCALE;
            let pair_points = (samples - 1) as f64;
            let mut weights = vec![1.0 / (a2 * pair_points); samples];
            weights[0] = 1.0 - 1.0 / a2;
            weights
        })
    }
}

fn push_pair(values: &mut Vec<f64>, z: &[f64], scale: f64) {
    values.extend(z.iter().map(|v| v * scale));
    values.extend(z.iter().map(|v| -v * scale));
}

/// `count` standard-normal vectors of length `n` made mutually orthogonal
/// (Gram-Schmidt), each scaled back to the length it was drawn with.
fn orthogonal(count: usize, n: usize, normal: &mut dyn FnMut() -> f64) -> Vec<Vec<f64>> {
    let mut vectors: Vec<Vec<f64>> = Vec::with_capacity(count);
    for _ in 0..count {
        let mut z: Vec<f64> = (0..n).map(|_| normal()).collect();
        let length = norm(&z);
        for done in &vectors {
            let along = dot(&z, done) / dot(done, done);
            z.iter_mut().zip(done).for_each(|(v, d)| *v -= along * d);
        }
        let now = norm(&z);
        if now > 0.0 {
            z.iter_mut().for_each(|v| *v *= length / now);
        }
        vectors.push(z);
    }
    vectors
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn norm(a: &[f64]) -> f64 {
    dot(a, a).sqrt()
}

/// PDA with the conditional sampler and a chosen design of its S draws.
pub struct DesignedPda {
    pub gaussian: Arc<ConditionalGaussian>,
    pub samples: usize,
    pub design: Design,
}

impl DesignedPda {
    pub fn new(
        gaussian: Arc<ConditionalGaussian>,
        samples: usize,
        design: Design,
    ) -> Result<Self, EngineError> {
        if !design.fits(samples) {
            return Err(EngineError::Statistics(format!(
                "{} cannot use {samples} passes per window",
                design.name()
            )));
        }
        Ok(DesignedPda {
            gaussian,
            samples,
            design,
        })
    }
}

impl WindowFill for DesignedPda {
    fn samples_per_window(&self) -> usize {
        self.samples
    }
    fn fill_batch(
        &self,
        input: &DeviceInput,
        windows: &[Window],
        seed: u64,
    ) -> Result<Tensor, EngineError> {
        let n = self.gaussian.window_values();
        let z = self
            .design
            .normals(seed, windows, self.samples, n, input.device);
        self.gaussian.samples_from(input, windows, &z)
    }
    fn sample_weights(&self) -> Option<Vec<f64>> {
        self.design.weights(self.samples)
    }
    fn fixed_window(&self) -> Option<usize> {
        Some(self.gaussian.window())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(design: Design, samples: usize, n: usize) -> Vec<Vec<f64>> {
        let window = Window {
            x: 3,
            y: 5,
            size: 2,
        };
        let z = design.normals(7, &[window], samples, n, Device::Cpu);
        (0..samples as i64)
            .map(|s| Vec::<f64>::try_from(z.get(s)).unwrap())
            .collect()
    }

    #[test]
    fn independent_draws_are_pdas_own() {
        let window = Window {
            x: 3,
            y: 5,
            size: 2,
        };
        let ours = Design::Independent.normals(7, &[window], 4, 6, Device::Cpu);
        let pda = super::super::draws::normals(7, &[window], 4, 6, Device::Cpu);
        assert!(ours.equal(&pda));
    }

    #[test]
    fn antithetic_and_orthogonal_pairs_cancel_and_are_orthogonal() {
        for design in [Design::Antithetic, Design::OrthogonalPairs] {
            let z = rows(design, 4, 50);
            for pair in z.chunks(2) {
                assert!(pair[0].iter().zip(&pair[1]).all(|(a, b)| a == &-b));
            }
            if design == Design::OrthogonalPairs {
                assert!(dot(&z[0], &z[2]).abs() < 1e-9);
            }
        }
    }

    #[test]
    fn latin_hypercube_puts_one_sample_in_each_quantile_band() {
        let z = rows(Design::LatinHypercube, 4, 30);
        let quartiles = [f64::NEG_INFINITY, -0.6745, 0.0, 0.6745, f64::INFINITY];
        for i in 0..30 {
            let mut bands: Vec<usize> = z
                .iter()
                .map(|row| {
                    quartiles
                        .windows(2)
                        .position(|b| row[i] > b[0] && row[i] < b[1])
                        .unwrap()
                })
                .collect();
            bands.sort();
            assert_eq!(bands, [0, 1, 2, 3], "coordinate {i}");
        }
    }

    #[test]
    fn sigma_pairs_weigh_the_mean_pass_and_the_pairs_to_one() {
        let z = rows(Design::SigmaPairs, 5, 10);
        assert!(z[0].iter().all(|v| *v == 0.0));
        assert!(z[1].iter().zip(&z[2]).all(|(a, b)| a == &-b));
        let w = Design::SigmaPairs.weights(5).unwrap();
        assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!((w[0] - 0.5).abs() < 1e-12 && (w[1] - 0.125).abs() < 1e-12);
    }
}
