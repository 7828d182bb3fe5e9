//! What each method puts into a window. The loop in `explain.rs` does the
//! rest (perturb, batch, forward, average, accumulate), so a new method is
//! one small implementation of [`WindowFill`].

use rand_chacha::ChaCha8Rng;

use super::classifier::InputImage;
use super::sampler::MarginalSampler;
use super::windows::Window;

pub trait WindowFill: Sync {
    /// Perturbed images per window (S); their probabilities are averaged.
    fn samples_per_window(&self) -> usize;
    /// Overwrites the window's pixels (all channels) of `image` with sample
    /// `sample`. `rng` is seeded per window, so the result does not depend on
    /// the batch a window lands in.
    fn fill(&self, image: &mut InputImage, window: Window, rng: &mut ChaCha8Rng);
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
    fn fill(&self, image: &mut InputImage, window: Window, rng: &mut ChaCha8Rng) {
        self.sampler.sample_into(image, window, rng);
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
    fn fill(&self, image: &mut InputImage, window: Window, _rng: &mut ChaCha8Rng) {
        self.sampler.mean_into(image, window);
    }
}
