//! How fast this worker explains, per model and method, as it measured it:
//! first the network alone (one timed batch when the worker starts), then
//! every finished run. Estimates and per-model defaults come from here, so
//! they hold for this worker's device, not for a machine in a README.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use tch::Kind;

use lens_engine::engine::{random_batch, Classifier};
use lens_engine::methods::MethodKind;

/// Forward passes per second, by model id and method (`None`: the network
/// alone, batched as the engine batches).
#[derive(Default)]
pub struct Speeds {
    measured: Mutex<HashMap<(String, Option<MethodKind>), f64>>,
}

/// A new run's weight against what was measured before: recent enough to
/// follow a change (another job on the device, a warmer cache), smooth
/// enough that one odd run does not swing the estimate.
const NEWEST_WEIGHT: f64 = 0.5;

/// A backward pass and a pass of one image cost about this many batched
/// forward passes (used until the method has run once).
const GRADIENT_PASSES: f64 = 3.0;

impl Speeds {
    fn measured(&self) -> std::sync::MutexGuard<'_, HashMap<(String, Option<MethodKind>), f64>> {
        self.measured.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Times the network on batches of `batch` images (after one pass to
    /// warm it up). Call it on the device's thread.
    pub fn calibrate(&self, model_id: &str, model: &dyn Classifier, batch: usize) {
        let _no_grad = tch::no_grad_guard();
        let images = random_batch(model.input_shape(), batch, model.device(), true);
        let pass = || {
            model
                .logits(&images)
                .and_then(|l| l.f_sum(Kind::Float))
                .map(|sum| sum.double_value(&[]))
        };
        if pass().is_err() {
            return; // A broken model fails its runs with its own message.
        }
        // The faster of two batches: a busy moment slows one of them.
        let mut fastest = f64::MAX;
        for _ in 0..2 {
            let start = Instant::now();
            if pass().is_err() {
                return;
            }
            fastest = fastest.min(start.elapsed().as_secs_f64());
        }
        let rate = batch as f64 / fastest.max(1e-9);
        self.measured().insert((model_id.to_string(), None), rate);
    }

    /// The network's speed as measured elsewhere (a gateway learns it from
    /// the workers).
    pub fn set_network(&self, model_id: &str, passes_per_second: f64) {
        self.measured()
            .insert((model_id.to_string(), None), passes_per_second);
    }

    /// The network's own speed, as calibrated.
    pub fn network(&self, model_id: &str) -> Option<f64> {
        self.measured().get(&(model_id.to_string(), None)).copied()
    }

    /// What a finished run measured.
    pub fn record(&self, model_id: &str, kind: MethodKind, passes: usize, seconds: f64) {
        if seconds <= 0.0 || passes == 0 {
            return;
        }
        let rate = passes as f64 / seconds;
        self.measured()
            .entry((model_id.to_string(), Some(kind)))
            .and_modify(|old| *old = (1.0 - NEWEST_WEIGHT) * *old + NEWEST_WEIGHT * rate)
            .or_insert(rate);
    }

    /// Passes per second for this model and method: the method's own runs,
    /// else the network's calibration (a gradient method's one pass counted
    /// as a backward pass too); `None` before either.
    pub fn passes_per_second(&self, model_id: &str, kind: MethodKind) -> Option<f64> {
        let measured = self.measured();
        if let Some(rate) = measured.get(&(model_id.to_string(), Some(kind))) {
            return Some(*rate);
        }
        let network = *measured.get(&(model_id.to_string(), None))?;
        Some(if kind.one_class_per_run() {
            network / GRADIENT_PASSES
        } else {
            network
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_refine_the_network_calibration() {
        let speeds = Speeds::default();
        assert_eq!(speeds.passes_per_second("m", MethodKind::Pda), None);
        speeds.measured().insert(("m".to_string(), None), 300.0);
        assert_eq!(speeds.passes_per_second("m", MethodKind::Pda), Some(300.0));
        assert_eq!(
            speeds.passes_per_second("m", MethodKind::Gradient),
            Some(100.0)
        );
        speeds.record("m", MethodKind::Pda, 1000, 10.0);
        assert_eq!(speeds.passes_per_second("m", MethodKind::Pda), Some(100.0));
        speeds.record("m", MethodKind::Pda, 1000, 5.0);
        assert_eq!(speeds.passes_per_second("m", MethodKind::Pda), Some(150.0));
        // Other methods and models keep their own figures.
        assert_eq!(
            speeds.passes_per_second("m", MethodKind::Occlusion),
            Some(300.0)
        );
        assert_eq!(speeds.passes_per_second("other", MethodKind::Pda), None);
    }
}
