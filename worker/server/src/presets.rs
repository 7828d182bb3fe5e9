//! The sample pictures the page offers: one held-out digit per class for
//! the digits, the credited photos under `data/photos` for photo models.

use std::path::Path;

use lens_proto::v1::Preset;

use lens_engine::digits::{held_out_presets, SHAPE as DIGIT_SHAPE};
use lens_engine::input::grey_png;
use lens_engine::models::Resize;

#[derive(Default)]
pub struct Presets {
    digits: Vec<Preset>,
    photos: Vec<Preset>,
}

impl Presets {
    /// Reads them from the data folder; what is missing is logged and left
    /// out.
    pub fn load(data: &Path) -> Presets {
        let digits = match held_out_presets(data) {
            Ok(presets) => presets
                .iter()
                .map(|(label, values)| Preset {
                    name: format!("digit {label}"),
                    label: *label as u32,
                    png: grey_png(values, DIGIT_SHAPE.width as u32, DIGIT_SHAPE.height as u32),
                    credit: "MNIST (LeCun, Cortes, Burges; CC BY-SA 3.0), held out".into(),
                })
                .collect(),
            Err(error) => {
                tracing::warn!("no digit presets: {error}");
                Vec::new()
            }
        };
        Presets {
            digits,
            photos: load_photos(&data.join("photos")),
        }
    }

    /// The presets that suit a model's input.
    pub fn for_model(&self, resize: Resize) -> Vec<Preset> {
        match resize {
            Resize::MnistDigit => self.digits.clone(),
            Resize::ImagenetCrop => self.photos.clone(),
        }
    }
}

/// The photos listed in `folder/CREDITS.txt` (file name, tab, credit line).
fn load_photos(folder: &Path) -> Vec<Preset> {
    let Ok(credits) = std::fs::read_to_string(folder.join("CREDITS.txt")) else {
        tracing::warn!(
            "no photos in {} (./dev setup copies them)",
            folder.display()
        );
        return Vec::new();
    };
    credits
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .filter_map(|(file, credit)| {
            Some(Preset {
                name: file.to_string(),
                label: 0,
                png: std::fs::read(folder.join(file)).ok()?,
                credit: credit.to_string(),
            })
        })
        .collect()
}
