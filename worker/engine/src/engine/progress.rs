//! What a run reports while it runs, and what a window adds to it: the
//! types the engine's loops (`explain`, `refine`, the gradient methods)
//! and their callers share.

use super::windows::Rect;

/// The results of consecutive windows of a run's schedule: all a window
/// adds to the explanation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WindowResults {
    /// Each window's grid cell.
    pub cells: Vec<i64>,
    /// Each window's evidence for every mapped class, window after window
    /// (`[windows, M]`).
    pub evidence: Vec<f64>,
    /// P(explained class) without each window.
    pub without: Vec<f64>,
    /// How much its S samples disagree (empty with one sample).
    pub spread: Vec<f64>,
}

impl WindowResults {
    pub fn extend(&mut self, more: WindowResults) {
        self.cells.extend(more.cells);
        self.evidence.extend(more.evidence);
        self.without.extend(more.without);
        self.spread.extend(more.spread);
    }
}

/// What the loop reports while it runs.
#[derive(Debug)]
pub enum Progress<'a> {
    /// Before any window: the unperturbed prediction.
    Started {
        probabilities: &'a [f32],
        predicted: usize,
        explained: usize,
        total_windows: usize,
    },
    /// Once, with `Schedule::CoarseToFine`, when the coarse windows are
    /// done: the whole map from them alone (`H x W`, row-major), before any
    /// final tile.
    Coarse {
        values: Vec<f32>,
        windows_done: usize,
        total_windows: usize,
    },
    /// With `Takeover::report`, after each batch: its windows' results.
    Windows(WindowResults),
    /// After each batch: the tiles that became final in it (maybe none).
    Batch {
        tiles: Vec<MapTile>,
        windows_done: usize,
        total_windows: usize,
    },
}

/// Final evidence values of the explained class over one rectangle.
#[derive(Clone, Debug, PartialEq)]
pub struct MapTile {
    pub rect: Rect,
    /// Row-major, `rect.width * rect.height`.
    pub values: Vec<f32>,
}
