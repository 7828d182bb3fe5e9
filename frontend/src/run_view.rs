//! The run on screen as the page holds it (`RunView`: its phase, progress
//! and outcome), made from its events in `run.rs`.

use crate::method::Method;
use crate::readout;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Idle,
    Running,
    Done,
    Failed,
    Cancelled,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Idle => "idle",
            Phase::Running => "running",
            Phase::Done => "done",
            Phase::Failed => "error",
            Phase::Cancelled => "cancelled",
        }
    }
}

/// Everything the page shows about the current run.
#[derive(Clone, Debug, PartialEq)]
pub struct RunView {
    pub phase: Phase,
    pub error: Option<String>,
    pub probabilities: Vec<f32>,
    pub class_names: Vec<String>,
    /// PDA's per-pixel sample spread, once finished.
    pub spread: Vec<f32>,
    pub predicted: u32,
    pub explained: u32,
    pub windows_done: u64,
    pub total_windows: u64,
    pub tiles: u32,
    pub scale: f32,
    pub elapsed_ms: f64,
    pub windows_per_second: f64,
    pub first_tile_ms: Option<f64>,
    /// When the coarse map arrived (long runs send one before any tile).
    pub coarse_ms: Option<f64>,
    /// Shown from the store, not computed now.
    pub replayed: bool,
    /// The computation's own time (as stored).
    pub wall_seconds: f64,
    /// Explanations ahead of this one while it waits for the device.
    pub queued_ahead: Option<u32>,
    /// The method that made the map (from the run itself).
    pub method: Option<Method>,
    /// Window and stride of the run, for reading the map.
    pub geometry: readout::Geometry,
    /// Per window position, P(explained class) with the window replaced.
    pub window_probabilities: Vec<f32>,
    /// The window positions whose values were estimated from their
    /// neighbours (increasing; empty: every window computed).
    pub estimated_windows: Vec<u32>,
    /// The other classes' maps from the same run, by class.
    pub class_maps: Vec<(u32, Vec<f32>)>,
    /// Opened by its id (a share link, a teacher's view), not started here.
    pub watched: bool,
}

impl RunView {
    pub fn class_name(&self, class: u32) -> String {
        self.class_names
            .get(class as usize)
            .cloned()
            .unwrap_or_else(|| class.to_string())
    }
}

impl Default for RunView {
    fn default() -> Self {
        RunView {
            phase: Phase::Idle,
            error: None,
            probabilities: Vec::new(),
            class_names: Vec::new(),
            spread: Vec::new(),
            predicted: 0,
            explained: 0,
            windows_done: 0,
            total_windows: 0,
            tiles: 0,
            scale: 0.0,
            elapsed_ms: 0.0,
            windows_per_second: 0.0,
            first_tile_ms: None,
            coarse_ms: None,
            replayed: false,
            wall_seconds: 0.0,
            queued_ahead: None,
            method: None,
            geometry: readout::Geometry::default(),
            window_probabilities: Vec::new(),
            estimated_windows: Vec::new(),
            class_maps: Vec::new(),
            watched: false,
        }
    }
}
