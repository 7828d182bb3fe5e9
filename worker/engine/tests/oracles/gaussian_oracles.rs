//! Oracles for the conditional Gaussian sampler on small synthetic Gaussians,
//! with the answers computed independently: through the precision matrix
//! (the inverse of the joint covariance, by Gauss-Jordan elimination here)
//! rather than the Schur complement the sampler uses.
//!
//! - `interior_moments_match_the_precision_form`
//! - `border_windows_condition_on_the_visible_ring_only`
//! - `samples_have_the_conditional_moments_and_stay_in_range`
//! - `sampled_mean_of_conditional_draws_approaches_the_conditional_mean`
//! - `fitted_statistics_match_a_brute_force_count_and_round_trip` (also
//!   when fitted image by image and pooled)
//! - `bulk_means_and_samples_equal_the_per_window_path`: the device path
//!   (every window of an image at once: interior and each border case)
//!   against the per-window one, with the same draws.

use std::sync::Arc;

use lens_engine::engine::{
    window_stream, windows, ConditionalGaussian, ConditionalMean, ConditionalPda, DeviceInput,
    InputImage, InputShape, PatchStatistics, SampledMean, Window, WindowFill,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Tensor};

const CHANNELS: usize = 2;
const SIDE: usize = 3; // window 1, padding 1
const D: usize = CHANNELS * SIDE * SIDE;

fn synthetic_statistics() -> PatchStatistics {
    statistics_of(CHANNELS, SIDE)
}

/// Sigma = B B^T + 0.5 I with a fixed pseudo-random B: positive definite.
fn statistics_of(channels: usize, side: usize) -> PatchStatistics {
    let d = channels * side * side;
    let b: Vec<f64> = (0..d * d)
        .map(|i| (((i * 7919 + 13) % 97) as f64 / 97.0 - 0.5) * 0.6)
        .collect();
    let mut covariance = vec![0f64; d * d];
    for i in 0..d {
        for j in 0..d {
            covariance[i * d + j] = (0..d).map(|k| b[i * d + k] * b[j * d + k]).sum::<f64>()
                + if i == j { 0.5 } else { 0.0 };
        }
    }
    PatchStatistics {
        channels,
        side,
        patches: 1000,
        mean: (0..d).map(|i| 0.1 * (i % 9) as f64 - 0.4).collect(),
        covariance,
    }
}

fn image() -> InputImage {
    let shape = InputShape {
        channels: CHANNELS,
        height: 5,
        width: 6,
    };
    InputImage {
        shape,
        values: (0..shape.values())
            .map(|i| ((i * 31) % 17) as f32 / 8.0 - 1.0)
            .collect(),
    }
}

fn invert(matrix: &[f64], n: usize) -> Vec<f64> {
    let mut a = matrix.to_vec();
    let mut inverse: Vec<f64> = (0..n * n)
        .map(|i| if i / n == i % n { 1.0 } else { 0.0 })
        .collect();
    for col in 0..n {
        let pivot = (col..n)
            .max_by(|&x, &y| a[x * n + col].abs().total_cmp(&a[y * n + col].abs()))
            .unwrap();
        for k in 0..n {
            a.swap(col * n + k, pivot * n + k);
            inverse.swap(col * n + k, pivot * n + k);
        }
        let p = a[col * n + col];
        for k in 0..n {
            a[col * n + k] /= p;
            inverse[col * n + k] /= p;
        }
        for row in 0..n {
            if row != col {
                let f = a[row * n + col];
                for k in 0..n {
                    a[row * n + k] -= f * a[col * n + k];
                    inverse[row * n + k] -= f * inverse[col * n + k];
                }
            }
        }
    }
    inverse
}

/// Conditional mean and covariance of the `window` positions given the
/// `given` positions (with values `patch`), via the precision matrix of the
/// marginal over window + given.
fn precision_form(
    stats: &PatchStatistics,
    window: &[usize],
    given: &[usize],
    patch: &[f64],
) -> (Vec<f64>, Vec<f64>) {
    let all: Vec<usize> = window.iter().chain(given).copied().collect();
    let n = all.len();
    let sub: Vec<f64> = all
        .iter()
        .flat_map(|&i| all.iter().map(move |&j| stats.covariance[i * D + j]))
        .collect();
    let precision = invert(&sub, n);
    let n1 = window.len();
    let lambda11: Vec<f64> = (0..n1)
        .flat_map(|i| (0..n1).map(move |j| (i, j)))
        .map(|(i, j)| precision[i * n + j])
        .collect();
    let covariance = invert(&lambda11, n1);
    let shift: Vec<f64> = (0..n1)
        .map(|i| {
            (n1..n)
                .map(|j| precision[i * n + j] * (patch[all[j]] - stats.mean[all[j]]))
                .sum()
        })
        .collect();
    let mean = (0..n1)
        .map(|i| {
            stats.mean[window[i]]
                - (0..n1)
                    .map(|j| covariance[i * n1 + j] * shift[j])
                    .sum::<f64>()
        })
        .collect();
    (mean, covariance)
}

/// The patch around the 1 x 1 window at (x, y), with its visible positions.
fn patch_at(image: &InputImage, x: usize, y: usize) -> (Vec<f64>, Vec<usize>, Vec<usize>) {
    let s = image.shape;
    let (mut patch, mut window, mut ring) = (vec![0f64; D], Vec::new(), Vec::new());
    for c in 0..CHANNELS {
        for r in 0..SIDE {
            for q in 0..SIDE {
                let index = (c * SIDE + r) * SIDE + q;
                let (py, px) = (y as isize + r as isize - 1, x as isize + q as isize - 1);
                if r == 1 && q == 1 {
                    window.push(index);
                }
                if (0..s.height as isize).contains(&py) && (0..s.width as isize).contains(&px) {
                    patch[index] =
                        image.values[c * s.pixels() + py as usize * s.width + px as usize] as f64;
                    if !(r == 1 && q == 1) {
                        ring.push(index);
                    }
                }
            }
        }
    }
    (patch, window, ring)
}

fn assert_close(a: &[f64], b: &[f64], tolerance: f64, what: &str) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() < tolerance, "{what}: {a:?} vs {b:?}");
    }
}

fn window_at(x: usize, y: usize) -> Window {
    Window { x, y, size: 1 }
}

#[test]
fn interior_moments_match_the_precision_form() {
    let stats = synthetic_statistics();
    let gaussian = ConditionalGaussian::new(stats.clone(), 1, (-1e9, 1e9), 0.0).unwrap();
    let image = image();
    for (x, y) in [(2, 2), (3, 1), (4, 3)] {
        let (mean, covariance) = gaussian.moments(&image, window_at(x, y));
        let (patch, window, ring) = patch_at(&image, x, y);
        assert_eq!(ring.len(), D - CHANNELS);
        let (expected_mean, expected_covariance) = precision_form(&stats, &window, &ring, &patch);
        assert_close(&mean, &expected_mean, 1e-9, "mean");
        assert_close(&covariance, &expected_covariance, 1e-9, "covariance");
        let mut out = vec![0f32; CHANNELS];
        gaussian.conditional_mean(&image, window_at(x, y), &mut out);
        assert_close(
            &out.iter().map(|v| *v as f64).collect::<Vec<_>>(),
            &expected_mean,
            1e-5,
            "fill",
        );
    }
}

#[test]
fn border_windows_condition_on_the_visible_ring_only() {
    let stats = synthetic_statistics();
    let gaussian = ConditionalGaussian::new(stats.clone(), 1, (-1e9, 1e9), 0.0).unwrap();
    let image = image();
    // Corners see 3 of 8 ring pixels per channel, edges 5.
    for ((x, y), visible) in [
        ((0, 0), 3),
        ((5, 4), 3),
        ((0, 2), 5),
        ((3, 0), 5),
        ((5, 1), 5),
    ] {
        let (patch, window, ring) = patch_at(&image, x, y);
        assert_eq!(ring.len(), visible * CHANNELS, "({x}, {y})");
        let (expected_mean, expected_covariance) = precision_form(&stats, &window, &ring, &patch);
        let (mean, covariance) = gaussian.moments(&image, window_at(x, y));
        assert_close(&mean, &expected_mean, 1e-9, "border mean");
        assert_close(&covariance, &expected_covariance, 1e-9, "border covariance");
    }
}

#[test]
fn samples_have_the_conditional_moments_and_stay_in_range() {
    let stats = synthetic_statistics();
    let image = image();
    let wide = ConditionalGaussian::new(stats.clone(), 1, (-1e9, 1e9), 0.0).unwrap();
    let (mean, covariance) = wide.moments(&image, window_at(2, 2));
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let n = 40_000;
    let mut out = vec![0f32; CHANNELS];
    let mut draws = Vec::with_capacity(n);
    for _ in 0..n {
        wide.sample(&image, window_at(2, 2), &mut rng, &mut out);
        draws.push([out[0] as f64, out[1] as f64]);
    }
    for i in 0..CHANNELS {
        let m = draws.iter().map(|d| d[i]).sum::<f64>() / n as f64;
        let sd = covariance[i * CHANNELS + i].sqrt();
        assert!(
            (m - mean[i]).abs() < 0.03 * sd.max(0.1),
            "mean {i}: {m} vs {}",
            mean[i]
        );
        for j in 0..CHANNELS {
            let c = draws
                .iter()
                .map(|d| (d[i] - mean[i]) * (d[j] - mean[j]))
                .sum::<f64>()
                / n as f64;
            let expected = covariance[i * CHANNELS + j];
            assert!(
                (c - expected).abs() < 0.05 * covariance[i * CHANNELS + i],
                "cov {i}{j}: {c} vs {expected}"
            );
        }
    }
    let narrow = ConditionalGaussian::new(stats, 1, (0.0, 0.25), 0.0).unwrap();
    for _ in 0..1000 {
        narrow.sample(&image, window_at(1, 1), &mut rng, &mut out);
        assert!(out.iter().all(|v| (0.0..=0.25).contains(v)));
    }
}

/// The Fig. 15 variant with the conditional sampler: the average of S
/// conditional draws tends to the conditional mean (error ~ 1/sqrt(S)).
#[test]
fn sampled_mean_of_conditional_draws_approaches_the_conditional_mean() {
    let gaussian =
        Arc::new(ConditionalGaussian::new(synthetic_statistics(), 1, (-1e9, 1e9), 0.0).unwrap());
    let image = image();
    let window = window_at(2, 2);
    let input = DeviceInput::new(&image, 1, Device::Cpu);
    let mean = ConditionalMean {
        gaussian: gaussian.clone(),
    }
    .fill_batch(&input, &[window], 0)
    .unwrap();
    let error = |samples: usize| {
        let fill = SampledMean {
            draws: ConditionalPda {
                gaussian: gaussian.clone(),
                samples,
            },
        };
        assert_eq!(fill.samples_per_window(), 1, "one pass per window");
        assert_eq!(fill.fixed_window(), Some(1));
        // Averaged over seeds, so the comparison is not one lucky draw.
        (0..20u64)
            .map(|seed| {
                let out = fill.fill_batch(&input, &[window], seed).unwrap();
                (out - &mean).abs().sum(Kind::Double).double_value(&[])
            })
            .sum::<f64>()
            / 20.0
    };
    let (few, many, lots) = (error(1), error(100), error(10_000));
    assert!(
        many < few * 0.3 && lots < many * 0.3,
        "{few} > {many} > {lots}"
    );
    let (_, covariance) = gaussian.moments(&image, window);
    assert!(lots < 0.05 * covariance[0].sqrt(), "{lots}");
}

#[test]
fn fitted_statistics_match_a_brute_force_count_and_round_trip() {
    let images = [image(), {
        let mut other = image();
        other
            .values
            .iter_mut()
            .enumerate()
            .for_each(|(i, v)| *v = (*v * 3.0 + (i % 5) as f32).sin());
        other
    }];
    let (side, stride) = (3, 2);
    let stats = PatchStatistics::fit(&images, side, stride).unwrap();
    let mut patches = Vec::new();
    for image in &images {
        let s = image.shape;
        for y in (0..=s.height - side).step_by(stride) {
            for x in (0..=s.width - side).step_by(stride) {
                let mut patch = Vec::new();
                for c in 0..s.channels {
                    for r in 0..side {
                        for q in 0..side {
                            patch.push(
                                image.values[c * s.pixels() + (y + r) * s.width + x + q] as f64,
                            );
                        }
                    }
                }
                patches.push(patch);
            }
        }
    }
    let n = patches.len() as f64;
    assert_eq!(stats.patches, patches.len());
    let mean: Vec<f64> = (0..D)
        .map(|i| patches.iter().map(|p| p[i]).sum::<f64>() / n)
        .collect();
    let covariance: Vec<f64> = (0..D * D)
        .map(|ij| {
            let (i, j) = (ij / D, ij % D);
            patches
                .iter()
                .map(|p| (p[i] - mean[i]) * (p[j] - mean[j]))
                .sum::<f64>()
                / (n - 1.0)
        })
        .collect();
    assert_close(&stats.mean, &mean, 1e-9, "fitted mean");
    assert_close(&stats.covariance, &covariance, 1e-9, "fitted covariance");

    // Fitted one image at a time and pooled: the same statistics.
    let apart: Vec<PatchStatistics> = images
        .iter()
        .map(|image| PatchStatistics::fit(std::slice::from_ref(image), side, stride).unwrap())
        .collect();
    let pooled = PatchStatistics::pooled(&apart.iter().collect::<Vec<_>>()).unwrap();
    assert_eq!(pooled.patches, stats.patches);
    assert_close(&pooled.mean, &mean, 1e-9, "pooled mean");
    assert_close(&pooled.covariance, &covariance, 1e-9, "pooled covariance");

    let path = std::env::temp_dir().join(format!(
        "lens-patch-stats-{}.safetensors",
        std::process::id()
    ));
    stats.save(&path).unwrap();
    assert_eq!(PatchStatistics::load(&path).unwrap(), stats);
    std::fs::remove_file(path).unwrap();
}

#[test]
fn bulk_means_and_samples_equal_the_per_window_path() {
    // Window 1 with a ring of 1 and window 2 with a ring of 2 (which has
    // border cases two pixels deep), over every window of the image.
    for (window, side) in [(1, 3), (2, 6)] {
        let gaussian =
            ConditionalGaussian::new(statistics_of(CHANNELS, side), window, (-0.5, 0.8), 0.0)
                .unwrap();
        let image = image();
        let all = windows(image.shape.height, image.shape.width, window, 1);
        let input = DeviceInput::new(&image, window, Device::Cpu);
        let values = CHANNELS * window * window;
        let as_rows = |t: Tensor| {
            let flat = Vec::<f64>::try_from(t.to_kind(Kind::Double).view([-1])).unwrap();
            flat.chunks(values).map(|c| c.to_vec()).collect::<Vec<_>>()
        };

        let means = as_rows(gaussian.mean_batch(&input, &all).unwrap());
        for (w, bulk) in all.iter().zip(&means) {
            let (expected, _) = gaussian.moments(&image, *w);
            assert_close(bulk, &expected, 1e-9, &format!("mean at {w:?}"));
        }

        let (samples, seed) = (3, 42);
        let drawn = as_rows(gaussian.sample_batch(&input, &all, samples, seed).unwrap());
        let mut clipped = 0;
        for (i, w) in all.iter().enumerate() {
            let mut rng = window_stream(seed, *w);
            for s in 0..samples {
                let mut expected = vec![0f32; values];
                gaussian.sample(&image, *w, &mut rng, &mut expected);
                let expected: Vec<f64> = expected.iter().map(|v| *v as f64).collect();
                clipped += expected
                    .iter()
                    .filter(|v| **v == -0.5 || **v == 0.8)
                    .count();
                assert_close(
                    &drawn[i * samples + s],
                    &expected,
                    1e-6,
                    &format!("sample {s} at {w:?}"),
                );
            }
        }
        assert!(clipped > 0, "the range clips some draws, on both paths");
    }
}
