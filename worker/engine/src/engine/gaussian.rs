//! The conditional Gaussian sampler of Zintgraf et al.: the pixels of a k x k
//! window given the ring of an l x l patch around it (l = k + 2p).
//!
//! Patch statistics: mean mu and covariance Sigma of every l x l patch (all
//! channels jointly, laid out channel, row, column) of a set of natural images.
//! With 1 = the window and 2 = the ring,
//!
//! ```text
//! mu_1|2    = mu_1 + Sigma_12 Sigma_22^-1 (x_2 - mu_2)
//! Sigma_1|2 = Sigma_11 - Sigma_12 Sigma_22^-1 Sigma_21
//! ```
//!
//! and samples are mu_1|2 + L z with L the Cholesky factor of Sigma_1|2 and z
//! standard normal, clipped to the data range. A small ridge is added to the
//! diagonal of Sigma (natural-image covariances are nearly singular).
//!
//! Border: a window near the image border sees only part of its ring. It is
//! conditioned on the ring pixels inside the image only (the Gaussian's
//! marginal over the window and the visible ring), never on padding. The
//! matrices depend only on which rows and columns of the patch fall outside
//! the image, so they are computed once per such case and cached.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Tensor};

use super::classifier::{InputImage, InputShape};
use super::draws::standard_normal;
use super::error::EngineError;
use super::fill::WindowFill;
use super::perturb::DeviceInput;
use super::windows::Window;

mod bulk;

/// Mean and covariance of l x l patches.
#[derive(Clone, Debug, PartialEq)]
pub struct PatchStatistics {
    pub channels: usize,
    pub side: usize,
    /// How many patches were averaged.
    pub patches: usize,
    pub mean: Vec<f64>,
    /// `d x d` row-major, d = channels x side x side.
    pub covariance: Vec<f64>,
}

impl PatchStatistics {
    pub fn dimension(&self) -> usize {
        self.channels * self.side * self.side
    }

    /// Fits from every `side` x `side` patch, `stride` apart, of each image.
    pub fn fit(images: &[InputImage], side: usize, stride: usize) -> Result<Self, EngineError> {
        let channels = images.first().map_or(0, |i| i.shape.channels);
        let d = (channels * side * side) as i64;
        let mut sum = Tensor::zeros([d], (Kind::Double, Device::Cpu));
        let mut outer = Tensor::zeros([d, d], (Kind::Double, Device::Cpu));
        let mut patches = 0i64;
        for image in images {
            let s = image.shape;
            if s.channels != channels || s.height < side || s.width < side {
                return Err(EngineError::Statistics(format!(
                    "image {:?} cannot give {channels}-channel {side} x {side} patches",
                    s
                )));
            }
            // im2col lays each patch out as (channel, row, column), like read_window.
            let columns = Tensor::from_slice(&image.values)
                .view([1, s.channels as i64, s.height as i64, s.width as i64])
                .to_kind(Kind::Double)
                .im2col(
                    [side as i64, side as i64],
                    [1, 1],
                    [0, 0],
                    [stride as i64, stride as i64],
                )
                .squeeze_dim(0);
            sum += columns.sum_dim_intlist([1i64].as_slice(), false, Kind::Double);
            outer += columns.matmul(&columns.tr());
            patches += columns.size()[1];
        }
        if patches < 2 {
            return Err(EngineError::Statistics("fewer than two patches".into()));
        }
        let mean = &sum / patches as f64;
        let covariance = (outer - mean.outer(&sum)) / (patches - 1) as f64;
        Ok(PatchStatistics {
            channels,
            side,
            patches: patches as usize,
            mean: Vec::<f64>::try_from(mean)?,
            covariance: Vec::<f64>::try_from(covariance.view([-1]))?,
        })
    }

    /// The statistics of the union of the patch sets `parts` were fitted
    /// on, from their counts, means and covariances alone (so a set can be
    /// left out without fitting the others again).
    pub fn pooled(parts: &[&PatchStatistics]) -> Result<Self, EngineError> {
        let Some(first) = parts.first() else {
            return Err(EngineError::Statistics("nothing to pool".into()));
        };
        let d = first.dimension();
        let mut sum = vec![0f64; d];
        // Sum over all patches of x x^T.
        let mut outer = vec![0f64; d * d];
        let mut patches = 0usize;
        for part in parts {
            if (part.channels, part.side) != (first.channels, first.side) {
                return Err(EngineError::Statistics(format!(
                    "cannot pool {}-channel {} x {} patches with {}-channel {} x {}",
                    part.channels, part.side, part.side, first.channels, first.side, first.side
                )));
            }
            let n = part.patches as f64;
            for i in 0..d {
                sum[i] += n * part.mean[i];
                for j in 0..d {
                    outer[i * d + j] +=
                        (n - 1.0) * part.covariance[i * d + j] + n * part.mean[i] * part.mean[j];
                }
            }
            patches += part.patches;
        }
        let n = patches as f64;
        let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
        let covariance = (0..d * d)
            .map(|ij| (outer[ij] - mean[ij / d] * sum[ij % d]) / (n - 1.0))
            .collect();
        Ok(PatchStatistics {
            channels: first.channels,
            side: first.side,
            patches,
            mean,
            covariance,
        })
    }

    pub fn save(&self, path: &Path) -> Result<(), EngineError> {
        let d = self.dimension() as i64;
        let header =
            Tensor::from_slice(&[self.channels as i64, self.side as i64, self.patches as i64]);
        Tensor::write_safetensors(
            &[
                ("header", header),
                ("mean", Tensor::from_slice(&self.mean)),
                (
                    "covariance",
                    Tensor::from_slice(&self.covariance).view([d, d]),
                ),
            ],
            path,
        )?;
        Ok(())
    }

    pub fn load(path: &Path) -> Result<Self, EngineError> {
        let tensors: HashMap<String, Tensor> =
            Tensor::read_safetensors(path)?.into_iter().collect();
        let get = |name: &str| {
            tensors
                .get(name)
                .ok_or_else(|| EngineError::Statistics(format!("{} has no {name}", path.display())))
        };
        let header = Vec::<i64>::try_from(get("header")?)?;
        let stats = PatchStatistics {
            channels: header[0] as usize,
            side: header[1] as usize,
            patches: header[2] as usize,
            mean: Vec::<f64>::try_from(get("mean")?)?,
            covariance: Vec::<f64>::try_from(get("covariance")?.view([-1]))?,
        };
        let d = stats.dimension();
        if stats.mean.len() != d || stats.covariance.len() != d * d {
            return Err(EngineError::Statistics(format!(
                "{}: sizes do not match",
                path.display()
            )));
        }
        Ok(stats)
    }
}

/// Rows and columns of the patch that fall outside the image.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
struct Clip {
    left: usize,
    top: usize,
    right: usize,
    bottom: usize,
}

/// The conditional of the window given the visible ring, for one `Clip`.
struct Conditioner {
    /// Patch positions (indices into the d values) of the window and visible ring.
    window: Vec<usize>,
    ring: Vec<usize>,
    /// Sigma_12 Sigma_22^-1, `n1 x n2` row-major.
    gain: Vec<f64>,
    /// Lower Cholesky factor of Sigma_1|2, `n1 x n1`.
    cholesky: Vec<f64>,
    /// Sigma_1|2 itself, for checks.
    covariance: Vec<f64>,
}

pub struct ConditionalGaussian {
    stats: PatchStatistics,
    window: usize,
    padding: usize,
    /// Samples are clipped to this range (the data range).
    range: (f32, f32),
    ridge: f64,
    cache: Mutex<HashMap<Clip, Arc<Conditioner>>>,
    /// The same matrices on the model's device (see `bulk`).
    on_device: Mutex<Option<bulk::DeviceCache>>,
}

impl ConditionalGaussian {
    /// `ridge` is added to Sigma's diagonal; `range` clips samples.
    pub fn new(
        stats: PatchStatistics,
        window: usize,
        range: (f32, f32),
        ridge: f64,
    ) -> Result<Self, EngineError> {
        if window == 0 || window > stats.side || !(stats.side - window).is_multiple_of(2) {
            return Err(EngineError::Statistics(format!(
                "a {window} x {window} window cannot sit centred in {0} x {0} patches",
                stats.side
            )));
        }
        let gaussian = ConditionalGaussian {
            padding: (stats.side - window) / 2,
            stats,
            window,
            range,
            ridge,
            cache: Mutex::new(HashMap::new()),
            on_device: Mutex::default(),
        };
        // Build the interior case now, so an unusable covariance fails here.
        gaussian.build(Clip {
            left: 0,
            top: 0,
            right: 0,
            bottom: 0,
        })?;
        Ok(gaussian)
    }

    pub fn window(&self) -> usize {
        self.window
    }

    /// mu_1|2 of the window given the image's visible ring, laid out like
    /// `read_window` (channel, row, column).
    pub fn conditional_mean(&self, image: &InputImage, window: Window, out: &mut [f32]) {
        let (conditioner, patch) = self.prepare(image, window);
        for (o, m) in out
            .iter_mut()
            .zip(self.mean_given_ring(&conditioner, &patch))
        {
            *o = m as f32;
        }
    }

    /// The conditional mean and covariance (`n1 x n1`) for a window: for tests
    /// and for anyone checking the sampler.
    pub fn moments(&self, image: &InputImage, window: Window) -> (Vec<f64>, Vec<f64>) {
        let (conditioner, patch) = self.prepare(image, window);
        (
            self.mean_given_ring(&conditioner, &patch),
            conditioner.covariance.clone(),
        )
    }

    /// One sample of the window, clipped to the data range.
    pub fn sample(
        &self,
        image: &InputImage,
        window: Window,
        rng: &mut ChaCha8Rng,
        out: &mut [f32],
    ) {
        let (conditioner, patch) = self.prepare(image, window);
        let mean = self.mean_given_ring(&conditioner, &patch);
        let n = mean.len();
        let z: Vec<f64> = (0..n).map(|_| standard_normal(rng)).collect();
        for i in 0..n {
            let row = &conditioner.cholesky[i * n..i * n + i + 1];
            let noise: f64 = row.iter().zip(&z).map(|(l, z)| l * z).sum();
            out[i] = ((mean[i] + noise) as f32).clamp(self.range.0, self.range.1);
        }
    }

    fn mean_given_ring(&self, c: &Conditioner, patch: &[f64]) -> Vec<f64> {
        let mu = &self.stats.mean;
        let deviation: Vec<f64> = c.ring.iter().map(|&j| patch[j] - mu[j]).collect();
        let n2 = c.ring.len();
        c.window
            .iter()
            .enumerate()
            .map(|(i, &w)| {
                let gain = &c.gain[i * n2..(i + 1) * n2];
                mu[w] + gain.iter().zip(&deviation).map(|(g, d)| g * d).sum::<f64>()
            })
            .collect()
    }

    /// Which rows and columns of the window's patch fall outside the image.
    fn clip(&self, shape: InputShape, window: Window) -> Clip {
        let p = self.padding;
        Clip {
            left: p.saturating_sub(window.x),
            top: p.saturating_sub(window.y),
            right: (window.x + window.size + p).saturating_sub(shape.width),
            bottom: (window.y + window.size + p).saturating_sub(shape.height),
        }
    }

    /// The conditioner of a clip, built on first use.
    fn conditioner(&self, clip: Clip) -> Arc<Conditioner> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .entry(clip)
            .or_insert_with(|| {
                // Sub-blocks of a positive-definite matrix are positive
                // definite, and the interior case was built in `new`.
                Arc::new(self.build(clip).expect("a sub-block of a valid covariance"))
            })
            .clone()
    }

    /// The conditioner for this window's clip, and the patch's values (0 where
    /// outside the image; those positions are never read).
    fn prepare(&self, image: &InputImage, window: Window) -> (Arc<Conditioner>, Vec<f64>) {
        let InputShape {
            channels,
            height,
            width,
        } = image.shape;
        let (p, l) = (self.padding, self.stats.side);
        let conditioner = self.conditioner(self.clip(image.shape, window));
        let mut patch = vec![0f64; self.stats.dimension()];
        for c in 0..channels {
            for r in 0..l {
                for q in 0..l {
                    let (y, x) = (
                        (window.y + r) as isize - p as isize,
                        (window.x + q) as isize - p as isize,
                    );
                    if (0..height as isize).contains(&y) && (0..width as isize).contains(&x) {
                        patch[(c * l + r) * l + q] = image.values
                            [c * height * width + y as usize * width + x as usize]
                            as f64;
                    }
                }
            }
        }
        (conditioner, patch)
    }

    fn build(&self, clip: Clip) -> Result<Conditioner, EngineError> {
        let (p, l, k, d) = (
            self.padding,
            self.stats.side,
            self.window,
            self.stats.dimension(),
        );
        let (mut window, mut ring) = (Vec::new(), Vec::new());
        for c in 0..self.stats.channels {
            for r in 0..l {
                for q in 0..l {
                    let index = (c * l + r) * l + q;
                    let inside_window = (p..p + k).contains(&r) && (p..p + k).contains(&q);
                    let visible = r >= clip.top
                        && r < l - clip.bottom
                        && q >= clip.left
                        && q < l - clip.right;
                    if inside_window {
                        window.push(index);
                    } else if visible {
                        ring.push(index);
                    }
                }
            }
        }
        let sigma = Tensor::from_slice(&self.stats.covariance).view([d as i64, d as i64])
            + Tensor::eye(d as i64, (Kind::Double, Device::Cpu)) * self.ridge;
        let pick = |rows: &[usize], cols: &[usize]| {
            let r = Tensor::from_slice(&rows.iter().map(|&i| i as i64).collect::<Vec<_>>());
            let c = Tensor::from_slice(&cols.iter().map(|&i| i as i64).collect::<Vec<_>>());
            sigma.index_select(0, &r).index_select(1, &c)
        };
        let s11 = pick(&window, &window);
        let (gain, covariance) = if ring.is_empty() {
            (
                Tensor::zeros([window.len() as i64, 0], (Kind::Double, Device::Cpu)),
                s11,
            )
        } else {
            let s12 = pick(&window, &ring);
            let s22 = pick(&ring, &ring);
            // gain = Sigma_12 Sigma_22^-1, i.e. the solution of gain Sigma_22 = Sigma_12.
            let gain = Tensor::f_linalg_solve(&s22, &s12.tr(), true)?.tr();
            let covariance = &s11 - gain.matmul(&s12.tr());
            (gain, covariance)
        };
        let covariance = (&covariance + covariance.tr()) / 2.0;
        let cholesky = covariance.f_linalg_cholesky(false).map_err(|e| {
            EngineError::Statistics(format!("Sigma_1|2 is not positive definite: {e}"))
        })?;
        let host = |t: Tensor| -> Result<Vec<f64>, EngineError> {
            Ok(Vec::<f64>::try_from(t.contiguous().view([-1]))?)
        };
        Ok(Conditioner {
            window,
            ring,
            gain: host(gain)?,
            cholesky: host(cholesky)?,
            covariance: host(covariance)?,
        })
    }
}

/// Algorithm 1 with the conditional sampler: S samples given the ring.
pub struct ConditionalPda {
    pub gaussian: Arc<ConditionalGaussian>,
    pub samples: usize,
}

impl WindowFill for ConditionalPda {
    fn samples_per_window(&self) -> usize {
        self.samples
    }
    fn fill_batch(
        &self,
        input: &DeviceInput,
        windows: &[Window],
        seed: u64,
    ) -> Result<Tensor, EngineError> {
        self.gaussian
            .sample_batch(input, windows, self.samples, seed)
    }
    fn fixed_window(&self) -> Option<usize> {
        Some(self.gaussian.window())
    }
}

/// Algorithm 2 with the conditional mean: one pass per window.
pub struct ConditionalMean {
    pub gaussian: Arc<ConditionalGaussian>,
}

impl WindowFill for ConditionalMean {
    fn samples_per_window(&self) -> usize {
        1
    }
    fn fill_batch(
        &self,
        input: &DeviceInput,
        windows: &[Window],
        _seed: u64,
    ) -> Result<Tensor, EngineError> {
        self.gaussian.mean_batch(input, windows)
    }
    fn fixed_window(&self) -> Option<usize> {
        Some(self.gaussian.window())
    }
}
