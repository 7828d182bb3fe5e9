//! What each method puts into a window. The loop in `explain.rs` does the
//! rest (perturb, batch, forward, average, accumulate), so a new method is
//! one small implementation of [`WindowFill`].

use rand_chacha::ChaCha8Rng;

use super::classifier::InputImage;
use super::sampler::MarginalSampler;
use super::windows::Window;

pub trait WindowFill: Sync {
    /// Perturbed images per window (S); their outputs are averaged.
    fn samples_per_window(&self) -> usize;
    /// Writes the replacement of the window (all channels, `C x k x k`
    /// row-major) into `out`. `image` is the unperturbed input, `rng` is seeded
    /// per window, so the result does not depend on the batch a window lands in.
    fn fill(&self, image: &InputImage, window: Window, rng: &mut ChaCha8Rng, out: &mut [f32]);

    /// The only window size this fill works with, if it has one (the
    /// conditional sampler is fitted for one window and patch size).
    fn fixed_window(&self) -> Option<usize> {
        None
    }
}

/// Algorithm 1 (PDA): S samples of the window from the sampler.
pub struct Pda<'a> {
    pub sampler: &'a MarginalSampler,
    pub samples: usize,
}

impl WindowFill for Pda<'_> {
    fn samples_per_window(&self) -> usize {
        self.samples
    }
    fn fill(&self, _image: &InputImage, window: Window, rng: &mut ChaCha8Rng, out: &mut [f32]) {
        self.sampler.draw(window, rng, out);
    }
}

/// Algorithm 2 (efficient PDA): the window replaced by the sampler's mean,
/// one forward pass per window.
pub struct EfficientPda<'a> {
    pub sampler: &'a MarginalSampler,
}

impl WindowFill for EfficientPda<'_> {
    fn samples_per_window(&self) -> usize {
        1
    }
    fn fill(&self, _image: &InputImage, window: Window, _rng: &mut ChaCha8Rng, out: &mut [f32]) {
        self.sampler.mean_window(window, out);
    }
}

/// The paper's Fig. 15 variant: the window replaced by the empirical mean of
/// the S draws of a PDA fill (marginal or conditional), pushed through the
/// network once. As S grows it approaches efficient PDA.
pub struct SampledMean<F> {
    /// The PDA fill whose draws are averaged; its S is the sample count.
    pub draws: F,
}

impl<F: WindowFill> WindowFill for SampledMean<F> {
    fn samples_per_window(&self) -> usize {
        1
    }
    fn fill(&self, image: &InputImage, window: Window, rng: &mut ChaCha8Rng, out: &mut [f32]) {
        let samples = self.draws.samples_per_window();
        let mut draw = vec![0f32; out.len()];
        let mut sum = vec![0f64; out.len()];
        for _ in 0..samples {
            self.draws.fill(image, window, rng, &mut draw);
            for (s, v) in sum.iter_mut().zip(&draw) {
                *s += *v as f64;
            }
        }
        for (o, s) in out.iter_mut().zip(&sum) {
            *o = (s / samples as f64) as f32;
        }
    }
    fn fixed_window(&self) -> Option<usize> {
        self.draws.fixed_window()
    }
}

/// Occlusion (Zeiler & Fergus): the window filled with a constant (grey 0.5
/// by default). Paired with `Quantity::Probability` it reports the drop in
/// P(c), averaged per pixel like PDA.
pub struct Occlusion {
    pub value: f32,
}

impl WindowFill for Occlusion {
    fn samples_per_window(&self) -> usize {
        1
    }
    fn fill(&self, _image: &InputImage, _window: Window, _rng: &mut ChaCha8Rng, out: &mut [f32]) {
        out.fill(self.value);
    }
}
