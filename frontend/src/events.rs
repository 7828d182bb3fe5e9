//! A run's events as the page reads them: made from the worker's stream at
//! the edge (`api`), read into the store (`run.rs`) and the comparison
//! view alike.

use crate::domain::RunSettings;

/// The model's input as explained, ready to paint.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Picture {
    pub width: u32,
    pub height: u32,
    pub rgba: Vec<u8>,
}

/// A rectangle of the map whose values are final, or (`coarse`) a preview
/// of the whole map that final tiles replace.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MapTile {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
    pub values: Vec<f32>,
    pub windows_done: u64,
    pub total_windows: u64,
    pub coarse: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Started {
    pub input: Option<Picture>,
    pub probabilities: Vec<f32>,
    pub class_names: Vec<String>,
    pub predicted: u32,
    pub explained: u32,
    pub total_windows: u64,
    /// The share id, and in the creator's stream only, its secret.
    pub id: String,
    pub owner_secret: String,
    /// What was asked, defaults filled in.
    pub settings: Option<RunSettings>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Finished {
    pub wall_seconds: f64,
    pub windows_per_second: f64,
    pub spread: Vec<f32>,
    pub replayed: bool,
    pub window_probabilities: Vec<f32>,
    /// Window positions estimated, not computed (a budget below 1).
    pub estimated_windows: Vec<u32>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum RunEvent {
    Queued {
        ahead: u32,
        id: String,
        owner_secret: String,
    },
    Started(Box<Started>),
    Tile(MapTile),
    /// Another class's finished map (after the last tile).
    ClassMap {
        class: u32,
        values: Vec<f32>,
    },
    Finished(Box<Finished>),
    /// Another worker took the run over; the map goes on where it was.
    Moved,
}

/// How a stream that did not fail ended.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    Finished,
    /// The callback asked to stop (a newer run took over).
    Stopped,
}

/// Why a stream ended without finishing: a readable message, and whether
/// the run was cancelled (not a failure).
#[derive(Clone, Debug, PartialEq)]
pub struct Broken {
    pub message: String,
    pub cancelled: bool,
}
