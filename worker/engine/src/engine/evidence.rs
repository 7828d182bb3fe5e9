//! Weight of evidence in log2 odds (Zintgraf et al. 2017, eq. 3):
//! WE = log2 odds(c | x) - log2 odds(c | x \ x_w), with the Laplace correction
//! p <- (p N + 1) / (N + K) applied first, so probabilities of exactly 0 or 1
//! (which a softmax in f32 does produce) still give finite odds.

/// The Laplace correction for a classifier trained on `training_images`
/// examples of `classes` classes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Laplace {
    pub training_images: usize,
    pub classes: usize,
}

impl Laplace {
    /// The corrected probability, strictly inside (0, 1).
    pub fn correct(&self, p: f64) -> f64 {
        let n = self.training_images as f64;
        (p * n + 1.0) / (n + self.classes as f64)
    }

    /// log2 of the odds of the corrected probability.
    pub fn log2_odds(&self, p: f64) -> f64 {
        let q = self.correct(p);
        (q / (1.0 - q)).log2()
    }

    /// `log2_odds` of every element of a tensor of probabilities (f64), on
    /// its device.
    pub fn log2_odds_tensor(&self, p: &tch::Tensor) -> tch::Tensor {
        let n = self.training_images as f64;
        let q: tch::Tensor = (p * n + 1.0) / (n + self.classes as f64);
        let odds: tch::Tensor = &q / (q.ones_like() - &q);
        odds.log2()
    }

    /// Weight of evidence of a window: how much more the class is believed with
    /// the window's pixels than with them marginalised out.
    pub fn weight_of_evidence(&self, p_with: f64, p_without: f64) -> f64 {
        self.log2_odds(p_with) - self.log2_odds(p_without)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn laplace_corrected_log_odds_by_hand() {
        // N = 6, K = 2: p = 0.5 -> (3 + 1) / 8 = 0.5 -> odds 1 -> 0 bits.
        let l = Laplace {
            training_images: 6,
            classes: 2,
        };
        assert_eq!(l.correct(0.5), 0.5);
        assert_eq!(l.log2_odds(0.5), 0.0);
        // p = 1 -> 7 / 8 -> odds 7 -> log2 7; p = 0 -> 1/8 -> odds 1/7.
        assert!((l.log2_odds(1.0) - 7f64.log2()).abs() < 1e-12);
        assert!((l.log2_odds(0.0) + 7f64.log2()).abs() < 1e-12);
        // N = 4000, K = 10: p = 0.9 -> 3601 / 4010; odds 3601 / 409.
        let l = Laplace {
            training_images: 4000,
            classes: 10,
        };
        let expected = (3601.0f64 / 409.0).log2();
        assert!((l.log2_odds(0.9) - expected).abs() < 1e-12);
        // Evidence: from 0.9 down to 0.5 -> log2(3601/409) - log2(2001/2009).
        let we = l.weight_of_evidence(0.9, 0.5);
        assert!((we - (expected - (2001.0f64 / 2009.0).log2())).abs() < 1e-12);
        assert!(l.weight_of_evidence(0.3, 0.3) == 0.0);
    }
}

/// Which output a map measures the change of ("which output to explain is a
/// value, not a method"). The evidence of a window is `value(x) - value(x')`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Quantity {
    /// Laplace-corrected log2 odds of P(c): the weight of evidence of PDA.
    #[default]
    LogOdds,
    /// P(c) itself: the drop in probability, as occlusion reports it.
    Probability,
    /// The logit z_c.
    Logit,
}

impl Quantity {
    /// The quantity for class probability `p` and logit `z`.
    pub fn value(&self, laplace: &Laplace, p: f64, z: f64) -> f64 {
        match self {
            Quantity::LogOdds => laplace.log2_odds(p),
            Quantity::Probability => p,
            Quantity::Logit => z,
        }
    }
}
