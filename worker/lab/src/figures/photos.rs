//! The figures of photo maps: PDA beside efficient PDA, the sampled mean and
//! the gradient version on the shipped photos (the paper's Figs. 14, 15 and
//! 19 in one grid), and how the maps move when the photo is rotated, flipped
//! or cropped (Fig. 18).

use std::path::Path;

use serde_json::json;
use tch::{Device, Tensor};

use super::grid::{titled, Row};
use super::{write_json, FiguresArgs, PHOTO_MODEL};
use lens_engine::agreement::rank_correlation;
use lens_engine::engine::{default_batch_size, InputImage, Target};
use lens_engine::methods::MethodKind;
use lens_engine::models::{LoadedModel, Precision};
use lens_worker::cli::named_images;
use lens_worker::cli::{map_file_stem, npy, overlay, plain_map, MapSetting};

/// The columns of Figs. 14, 15 and 19: PDA first, the others compared with it.
const PHOTO_METHODS: [(MethodKind, &str); 4] = [
    (MethodKind::Pda, "PDA"),
    (MethodKind::EfficientPda, "efficient PDA"),
    (MethodKind::SampledMean, "sampled mean"),
    (MethodKind::Gradient, "gradient version"),
];

fn photo_setting(args: &FiguresArgs, device: Device) -> MapSetting {
    MapSetting {
        window: 10,
        stride: args.stride,
        samples: args.map_samples,
        batch_size: args.run.batch_size.unwrap_or(default_batch_size(device)),
        seed: args.run.seed,
        target: Target::Predicted,
    }
}

/// The map of one method on one photo: from `--maps` when `explain --out`
/// left one there for this photo and method, else computed now.
fn photo_map(
    args: &FiguresArgs,
    model: &LoadedModel,
    setting: &MapSetting,
    (name, image): (&str, &InputImage),
    kind: MethodKind,
) -> anyhow::Result<Vec<f32>> {
    if let Some(folder) = &args.maps {
        let prefix = format!("{}-", map_file_stem(Path::new(name), kind));
        for entry in std::fs::read_dir(folder)? {
            let path = entry?.path();
            let file = path.file_name().unwrap_or_default().to_string_lossy();
            if file.starts_with(&prefix) && file.ends_with(".npy") && !file.ends_with("-spread.npy")
            {
                let (map, height, width) = npy::read_f32(&path)?;
                anyhow::ensure!(
                    (height, width) == (image.shape.height, image.shape.width),
                    "{} is {height} x {width}, the model's input is {} x {}",
                    path.display(),
                    image.shape.height,
                    image.shape.width
                );
                return Ok(map);
            }
        }
    }
    Ok(plain_map(model, kind, setting, image)?.map().to_vec())
}

/// Figs. 14, 15 and 19: each shipped photo's maps, one row per photo.
pub(super) fn figure_14_15_19(args: &FiguresArgs, device: Device) -> anyhow::Result<()> {
    let model = LoadedModel::load(PHOTO_MODEL, &args.run.models, device, Precision::Full)?;
    let setting = photo_setting(args, device);
    let photos = named_images(&model, None, args.photo_count, &args.run.data)?;
    let (mut rows, mut agreement) = (Vec::new(), Vec::new());
    for (name, image) in &photos {
        eprintln!("Figs. 14, 15, 19: {name}");
        let maps = PHOTO_METHODS
            .iter()
            .map(|&(kind, _)| photo_map(args, &model, &setting, (name, image), kind))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let with_pda: Vec<f64> = maps[1..]
            .iter()
            .map(|m| rank_correlation(&maps[0], m))
            .collect();
        agreement.push(json!({"photo": name, "rank_correlation_with_pda": with_pda}));
        rows.push(Row {
            label: name.clone(),
            tiles: maps.iter().map(|m| overlay::render(image, m)).collect(),
        });
    }
    let columns: Vec<&str> = PHOTO_METHODS.iter().map(|&(_, title)| title).collect();
    titled(&columns, &rows)?.save(args.out.join("fig14-15-19-photo-maps.png"))?;
    write_json(
        &args.out.join("fig14-15-19-photo-maps.json"),
        &json!({
            "columns": columns, "window": setting.window, "stride": setting.stride,
            "samples": setting.samples, "maps_from": args.maps, "photos": agreement,
        }),
    )?;
    println!("Figs. 14, 15, 19: {}", serde_json::to_string(&agreement)?);
    Ok(())
}

/// The changes of Fig. 18, applied alike to a photo and to a map.
#[derive(Clone, Copy, Debug)]
enum Change {
    Unchanged,
    Rotated(f64),
    Flipped,
    /// The centre, this share of each side, scaled back up.
    Cropped(f64),
}

impl Change {
    fn label(self) -> String {
        match self {
            Change::Unchanged => "original".into(),
            Change::Rotated(degrees) => format!("rotated {degrees:+}°"),
            Change::Flipped => "flipped".into(),
            Change::Cropped(share) => format!("centre {:.0}%", share * 100.0),
        }
    }

    /// `values` (C x H x W) changed; rotation fills the corners with zeros.
    fn apply(self, values: &[f32], channels: usize, height: usize, width: usize) -> Vec<f32> {
        let (c, h, w) = (channels as i64, height as i64, width as i64);
        let whole = Tensor::from_slice(values).view([1, c, h, w]);
        let changed = match self {
            Change::Unchanged => whole,
            Change::Flipped => whole.flip([3]),
            Change::Cropped(share) => {
                let (ch, cw) = ((h as f64 * share) as i64, (w as f64 * share) as i64);
                whole
                    .narrow(2, (h - ch) / 2, ch)
                    .narrow(3, (w - cw) / 2, cw)
                    .upsample_bilinear2d([h, w], false, None, None)
            }
            Change::Rotated(degrees) => {
                let (sin, cos) = degrees.to_radians().sin_cos();
                let theta = Tensor::from_slice(&[
                    cos as f32,
                    -sin as f32,
                    0.0,
                    sin as f32,
                    cos as f32,
                    0.0,
                ])
                .view([1, 2, 3]);
                let grid = Tensor::affine_grid_generator(&theta, [1, c, h, w], false);
                // Bilinear, zeros outside, pixel centres (align_corners false).
                Tensor::grid_sampler(&whole, &grid, 0, 0, false)
            }
        };
        Vec::<f32>::try_from(changed.flatten(0, -1)).expect("a float tensor")
    }
}

const CHANGES: [Change; 5] = [
    Change::Unchanged,
    Change::Rotated(15.0),
    Change::Flipped,
    Change::Cropped(0.75),
    Change::Rotated(-30.0),
];

/// Fig. 18: one photo changed four ways, its maps beside the original's.
/// Each changed map is compared with the original map changed the same way
/// (where the change leaves pixels of the photo): rank correlation 1 means
/// the evidence moved exactly with the photo.
pub(super) fn figure_18(args: &FiguresArgs, device: Device) -> anyhow::Result<()> {
    let model = LoadedModel::load(PHOTO_MODEL, &args.run.models, device, Precision::Full)?;
    let mut setting = photo_setting(args, device);
    let folder = args.run.data.join("photos");
    let (name, photo) = named_images(&model, Some(&folder), usize::MAX, &args.run.data)?
        .into_iter()
        .find(|(name, _)| *name == args.invariance_photo)
        .ok_or_else(|| {
            anyhow::anyhow!("no photo {} in {}", args.invariance_photo, folder.display())
        })?;
    let s = photo.shape;
    let methods = [MethodKind::EfficientPda, MethodKind::Pda];
    let mut originals: Vec<Vec<f32>> = Vec::new();
    let (mut rows, mut moved) = (Vec::new(), Vec::new());
    for change in CHANGES {
        eprintln!("Fig. 18: {name}, {}", change.label());
        let image = InputImage {
            shape: s,
            values: change.apply(&photo.values, s.channels, s.height, s.width),
        };
        let inside = change.apply(&vec![1.0; s.pixels()], 1, s.height, s.width);
        let mut tiles = Vec::new();
        let mut correlations = Vec::new();
        for (m, &kind) in methods.iter().enumerate() {
            let explanation = plain_map(&model, kind, &setting, &image)?;
            // Every change explains the class predicted for the original.
            setting.target = Target::Class(explanation.explained);
            let map = explanation.map().to_vec();
            if originals.len() <= m {
                originals.push(map.clone());
            }
            let expected = change.apply(&originals[m], 1, s.height, s.width);
            let (a, b): (Vec<f32>, Vec<f32>) = expected
                .iter()
                .zip(&map)
                .zip(&inside)
                .filter(|(_, &v)| v > 0.999)
                .map(|((&e, &m), _)| (e, m))
                .unzip();
            correlations.push(json!({
                "method": kind.name(),
                "class": model.class_names.get(explanation.explained),
                "rank_correlation_with_original": rank_correlation(&a, &b),
            }));
            tiles.push(overlay::render(&image, &map));
        }
        moved.push(json!({"change": change.label(), "maps": correlations}));
        rows.push(Row {
            label: change.label(),
            tiles,
        });
    }
    titled(&["efficient PDA", "PDA"], &rows)?.save(args.out.join("fig18-invariance.png"))?;
    write_json(
        &args.out.join("fig18-invariance.json"),
        &json!({
            "photo": name, "window": setting.window, "stride": setting.stride,
            "samples": setting.samples, "changes": moved,
        }),
    )?;
    println!("Fig. 18: {}", serde_json::to_string(&moved)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 4 x 4 image whose pixels are their own row-major index.
    fn indices() -> Vec<f32> {
        (0..16).map(|i| i as f32).collect()
    }

    fn close(a: &[f32], b: &[f32]) -> bool {
        a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-4)
    }

    #[test]
    fn flipping_twice_and_leaving_unchanged_give_the_image_back() {
        let flipped = Change::Flipped.apply(&indices(), 1, 4, 4);
        assert_eq!(&flipped[..4], &[3.0, 2.0, 1.0, 0.0]);
        assert_eq!(Change::Flipped.apply(&flipped, 1, 4, 4), indices());
        assert_eq!(Change::Unchanged.apply(&indices(), 1, 4, 4), indices());
    }

    #[test]
    fn a_quarter_turn_moves_every_pixel_onto_another_pixel() {
        let turned = Change::Rotated(90.0).apply(&indices(), 1, 4, 4);
        // Output (i, j) samples the input at row j, column 3 - i.
        let expected: Vec<f32> = (0..16)
            .map(|k| {
                let (i, j) = (k / 4, k % 4);
                (j * 4 + 3 - i) as f32
            })
            .collect();
        assert!(close(&turned, &expected), "{turned:?}");
        assert!(close(
            &Change::Rotated(0.0).apply(&indices(), 1, 4, 4),
            &indices()
        ));
    }

    #[test]
    fn rotation_empties_the_corners_and_a_crop_keeps_every_pixel() {
        let ones = vec![1.0; 64 * 64];
        let rotated = Change::Rotated(45.0).apply(&ones, 1, 64, 64);
        assert!(rotated[0] < 0.5, "corner {}", rotated[0]);
        assert!((rotated[32 * 64 + 32] - 1.0).abs() < 1e-6);
        let cropped = Change::Cropped(0.75).apply(&ones, 1, 64, 64);
        assert!(cropped.iter().all(|v| (v - 1.0).abs() < 1e-6));
        // The crop is the centre, scaled up: the middle pixel stays put.
        let ramp: Vec<f32> = (0..64 * 64).map(|k| (k % 64) as f32).collect();
        let scaled = Change::Cropped(0.5).apply(&ramp, 1, 64, 64);
        assert!((scaled[32] - 32.0).abs() < 1.0, "{}", scaled[32]);
        assert!(scaled[0] > 15.0 && scaled[63] < 48.0);
    }
}
