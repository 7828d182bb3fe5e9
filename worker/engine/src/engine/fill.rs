//! What each method puts into a window. The loop in `explain.rs` does the
//! rest (perturb, batch, forward, average, accumulate), so a new method is
//! one small implementation of [`WindowFill`] that fills a whole batch of
//! windows at once, on the model's device.

use tch::{Kind, Tensor};

use super::error::EngineError;
use super::perturb::DeviceInput;
use super::sampler::MarginalSampler;
use super::windows::Window;

pub trait WindowFill: Sync {
    /// Perturbed images per window (S); their outputs are averaged.
    fn samples_per_window(&self) -> usize;

    /// The replacements of a batch of windows on the input's device:
    /// `[B * S, C * k * k]` (f32 or f64), the S samples of window b in rows
    /// `b * S .. (b + 1) * S`, each laid out like `read_window` (channel,
    /// row, column). Random draws come only from `draws::window_stream(seed,
    /// window)`, so a window's replacement does not depend on its batch.
    fn fill_batch(
        &self,
        input: &DeviceInput,
        windows: &[Window],
        seed: u64,
    ) -> Result<Tensor, EngineError>;

    /// How a window's S outputs are averaged: `None` for the plain mean
    /// (every method of the paper), else one weight per sample, summing to
    /// 1 (estimators that mix the conditional mean pass with draws).
    fn sample_weights(&self) -> Option<Vec<f64>> {
        None
    }

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
    fn fill_batch(
        &self,
        input: &DeviceInput,
        windows: &[Window],
        seed: u64,
    ) -> Result<Tensor, EngineError> {
        Ok(self.sampler.draw_batch(input, windows, self.samples, seed))
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
    fn fill_batch(
        &self,
        input: &DeviceInput,
        windows: &[Window],
        _seed: u64,
    ) -> Result<Tensor, EngineError> {
        Ok(self.sampler.mean_batch(input, windows))
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
    fn fill_batch(
        &self,
        input: &DeviceInput,
        windows: &[Window],
        seed: u64,
    ) -> Result<Tensor, EngineError> {
        let samples = self.draws.samples_per_window() as i64;
        let draws = self.draws.fill_batch(input, windows, seed)?;
        Ok(draws
            .f_to_kind(Kind::Double)?
            .f_view([windows.len() as i64, samples, -1])?
            .f_mean_dim([1i64].as_slice(), false, Kind::Double)?)
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
    fn fill_batch(
        &self,
        input: &DeviceInput,
        windows: &[Window],
        _seed: u64,
    ) -> Result<Tensor, EngineError> {
        let shape = [windows.len() as i64, input.window_values() as i64];
        Ok(Tensor::f_full(
            shape,
            self.value as f64,
            (Kind::Float, input.device),
        )?)
    }
}
