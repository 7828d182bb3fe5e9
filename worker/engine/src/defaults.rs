//! A model's default method, window and stride per kind of device, chosen
//! from a measurement (`evidence-lens defaults`) rather than by hand. The
//! measurement is kept beside the model as `defaults.json`; the worker
//! offers the choice for its own device to the page.

use serde::{Deserialize, Serialize};

pub const DEFAULTS_FILE: &str = "defaults.json";

/// Settings within this much of the best agreement with PDA count as
/// agreeing equally; faithfulness decides among them.
pub const AGREEMENT_TOLERANCE: f64 = 0.02;

/// One setting as measured on one device, means over the images.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MeasuredSetting {
    /// The command line's name (`efficient-pda`, `pda`, ...).
    pub method: String,
    /// S, for PDA and the sampled mean.
    pub samples: Option<usize>,
    pub window: usize,
    pub stride: usize,
    /// The share of the windows computed, the rest estimated from their
    /// neighbours (`ExplainParams::budget`); absent: every window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<f64>,
    /// Seconds per image: measured when `measured`, else estimated from
    /// the device's passes per second (a setting far over the budget is
    /// not run).
    pub seconds: f64,
    pub measured: bool,
    /// Spearman rank correlation with the reference PDA at the same window.
    pub rank_correlation: Option<f64>,
    /// Deletion and insertion areas, removal by blur and by grey.
    pub deletion_blur: Option<f64>,
    pub insertion_blur: Option<f64>,
    pub deletion_grey: Option<f64>,
    pub insertion_grey: Option<f64>,
}

impl MeasuredSetting {
    /// Insertion minus deletion, mean of blur and grey: how much better
    /// than its reverse the map's order is (higher is more faithful).
    pub fn faithfulness_gap(&self) -> Option<f64> {
        let blur = self.insertion_blur? - self.deletion_blur?;
        let grey = self.insertion_grey? - self.deletion_grey?;
        Some((blur + grey) / 2.0)
    }

    /// Every pixel is averaged over several windows (not a mosaic).
    pub fn overlaps(&self) -> bool {
        2 * self.stride <= self.window
    }

    /// The share of the windows computed (1: every window).
    pub fn budget_share(&self) -> f64 {
        self.budget.unwrap_or(1.0)
    }
}

/// The measurement on one kind of device.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceDefaults {
    /// "CPU" or "CUDA".
    pub device: String,
    /// The machine, for people ("2 CPU cores", "one H200").
    pub machine: String,
    /// A default finishes within this many seconds per image there.
    pub budget_seconds: f64,
    /// E.g. "PDA, S = 8, at the finest stride measured at the window".
    pub reference: String,
    pub images: Vec<String>,
    pub settings: Vec<MeasuredSetting>,
    /// The default before this measurement, measured the same way (its
    /// agreement only where a reference at its window was computed).
    pub previous: Option<MeasuredSetting>,
    pub measured_unix: i64,
}

impl DeviceDefaults {
    /// Every setting was run and finished within the budget (none left
    /// out on an estimate).
    pub fn everything_fit(&self) -> bool {
        self.settings
            .iter()
            .all(|s| s.measured && s.seconds <= self.budget_seconds)
    }

    /// The default: among the settings that overlap (stride at most half
    /// the window) and fit the budget, those within `AGREEMENT_TOLERANCE`
    /// of the best agreement with PDA; of these the most faithful, then the
    /// fastest.
    pub fn chosen(&self) -> Option<&MeasuredSetting> {
        let eligible: Vec<&MeasuredSetting> = self
            .settings
            .iter()
            .filter(|s| s.measured && s.overlaps() && s.seconds <= self.budget_seconds)
            .filter(|s| s.rank_correlation.is_some() && s.faithfulness_gap().is_some())
            .collect();
        let best = eligible
            .iter()
            .filter_map(|s| s.rank_correlation)
            .fold(f64::NEG_INFINITY, f64::max);
        eligible
            .into_iter()
            .filter(|s| {
                s.rank_correlation.unwrap_or(f64::NEG_INFINITY) >= best - AGREEMENT_TOLERANCE
            })
            .max_by(|a, b| {
                let gap = |s: &MeasuredSetting| s.faithfulness_gap().unwrap_or(f64::NEG_INFINITY);
                gap(a)
                    .total_cmp(&gap(b))
                    .then(b.seconds.total_cmp(&a.seconds))
            })
    }
}

/// Every device measured for one model (`defaults.json`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelDefaults {
    pub devices: Vec<DeviceDefaults>,
}

impl ModelDefaults {
    /// The measurement kept in a model's folder, if any (an unreadable one
    /// is reported and left out).
    pub fn read(folder: &std::path::Path) -> Option<ModelDefaults> {
        crate::agreement::read_beside_model(folder, DEFAULTS_FILE)
    }

    /// The measurement on a device whose name starts with `device` ("CPU",
    /// "CUDA"; a worker's "CUDA, half precision" is CUDA) and its choice.
    /// A GPU without a measurement of its own takes the CPU's choice when
    /// every setting fit the budget there: it would measure the same
    /// settings with the same maps, only faster, so the same one wins.
    pub fn chosen_for(&self, device: &str) -> Option<(&DeviceDefaults, &MeasuredSetting)> {
        let own = self.devices.iter().find(|d| device.starts_with(&d.device));
        let measured = own.or_else(|| {
            self.devices
                .iter()
                .find(|d| d.device == "CPU" && d.everything_fit())
        })?;
        Some((measured, measured.chosen()?))
    }

    /// Puts `measured` in place of the same device's earlier measurement.
    pub fn replace(&mut self, measured: DeviceDefaults) {
        self.devices.retain(|d| d.device != measured.device);
        self.devices.push(measured);
        self.devices.sort_by(|a, b| a.device.cmp(&b.device));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setting(method: &str, window: usize, stride: usize, seconds: f64) -> MeasuredSetting {
        MeasuredSetting {
            method: method.into(),
            samples: None,
            window,
            stride,
            budget: None,
            seconds,
            measured: true,
            rank_correlation: Some(0.5),
            deletion_blur: Some(0.1),
            insertion_blur: Some(0.3),
            deletion_grey: Some(0.1),
            insertion_grey: Some(0.3),
        }
    }

    fn device(settings: Vec<MeasuredSetting>) -> DeviceDefaults {
        DeviceDefaults {
            device: "CPU".into(),
            machine: "test".into(),
            budget_seconds: 15.0,
            reference: "PDA".into(),
            images: vec![],
            settings,
            previous: None,
            measured_unix: 0,
        }
    }

    #[test]
    fn mosaics_slow_and_unmeasured_settings_are_never_chosen() {
        let mosaic = MeasuredSetting {
            rank_correlation: Some(0.99),
            ..setting("mosaic", 10, 10, 1.0)
        };
        let slow = MeasuredSetting {
            rank_correlation: Some(0.99),
            ..setting("slow", 10, 5, 16.0)
        };
        let estimated = MeasuredSetting {
            measured: false,
            rank_correlation: Some(0.99),
            ..setting("estimated", 10, 5, 1.0)
        };
        let plain = setting("plain", 10, 5, 14.0);
        let all = device(vec![mosaic, slow, estimated, plain]);
        assert_eq!(all.chosen().unwrap().method, "plain");
        assert!(device(vec![setting("mosaic", 10, 6, 1.0)])
            .chosen()
            .is_none());
    }

    #[test]
    fn agreement_first_then_faithfulness_then_time() {
        // b agrees nearly as well as a and is more faithful; c is as
        // faithful as b but slower; d is most faithful but agrees far less.
        let a = MeasuredSetting {
            rank_correlation: Some(0.95),
            ..setting("a", 10, 5, 5.0)
        };
        let b = MeasuredSetting {
            rank_correlation: Some(0.94),
            insertion_blur: Some(0.4),
            ..setting("b", 10, 5, 5.0)
        };
        let c = MeasuredSetting {
            seconds: 9.0,
            ..b.clone()
        };
        let d = MeasuredSetting {
            rank_correlation: Some(0.80),
            insertion_blur: Some(0.9),
            ..setting("d", 10, 5, 1.0)
        };
        let chosen = device(vec![a, c, b, d]);
        let best = chosen.chosen().unwrap();
        assert_eq!((best.method.as_str(), best.seconds), ("b", 5.0));
        // Blur 0.3, grey 0.2: a gap of 0.25.
        assert!((best.faithfulness_gap().unwrap() - 0.25).abs() < 1e-12);
    }

    #[test]
    fn a_budget_reads_back_and_a_file_without_one_means_every_window() {
        let budgeted = MeasuredSetting {
            budget: Some(0.0625),
            ..setting("pda", 10, 2, 9.0)
        };
        let text = serde_json::to_string(&budgeted).unwrap();
        let back: MeasuredSetting = serde_json::from_str(&text).unwrap();
        assert_eq!(back, budgeted);
        assert_eq!(back.budget_share(), 0.0625);
        let every = serde_json::to_string(&setting("pda", 10, 2, 9.0)).unwrap();
        assert!(!every.contains("budget"), "{every}");
        let old: MeasuredSetting = serde_json::from_str(&every).unwrap();
        assert_eq!(old.budget_share(), 1.0);
    }

    #[test]
    fn a_device_is_found_by_the_start_of_its_name() {
        let mut all = ModelDefaults::default();
        all.replace(device(vec![setting("cpu", 4, 2, 1.0)]));
        let mut cuda = device(vec![setting("cuda", 4, 1, 1.0)]);
        cuda.device = "CUDA".into();
        all.replace(cuda.clone());
        all.replace(cuda);
        assert_eq!(all.devices.len(), 2);
        assert_eq!(
            all.chosen_for("CUDA, half precision").unwrap().1.method,
            "cuda"
        );
        assert_eq!(all.chosen_for("CPU").unwrap().1.method, "cpu");
    }

    #[test]
    fn a_gpu_takes_the_cpus_choice_only_when_every_setting_fit_there() {
        // "other" is the more faithful, and slower.
        let other = MeasuredSetting {
            insertion_blur: Some(0.4),
            ..setting("other", 6, 3, 14.0)
        };
        let fits = device(vec![setting("cpu", 4, 2, 1.0), other]);
        let all = ModelDefaults {
            devices: vec![fits.clone()],
        };
        let (measured, chosen) = all.chosen_for("CUDA").unwrap();
        assert_eq!(
            (measured.device.as_str(), chosen.method.as_str()),
            ("CPU", "other")
        );
        // A setting over the budget, or left out on an estimate, could be
        // chosen by a faster device: no fallback then.
        for left_out in [
            setting("slow", 8, 4, 16.0),
            MeasuredSetting {
                measured: false,
                ..setting("estimated", 8, 4, 30.0)
            },
        ] {
            let mut cpu = fits.clone();
            cpu.settings.push(left_out);
            let all = ModelDefaults { devices: vec![cpu] };
            assert!(all.chosen_for("CUDA").is_none());
            assert_eq!(all.chosen_for("CPU").unwrap().1.method, "other");
        }
    }
}
