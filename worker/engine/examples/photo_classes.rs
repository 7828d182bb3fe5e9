//! Top classes of a TorchScript model (default: EfficientNet-Lite0) for every
//! photo in data/photos, after the ImageNet crop.
//!
//!     cargo run --release --example photo_classes [-- MODEL_FOLDER [TOP]]

use std::path::PathBuf;

use lens_engine::engine::Classifier;
use lens_engine::input::photo_from_bytes;
use lens_engine::models::TorchScriptModel;
use tch::Tensor;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let folder = PathBuf::from(args.next().unwrap_or("models/efficientnet-lite0".into()));
    let top: usize = args.next().map_or(Ok(3), |a| a.parse())?;
    let model = TorchScriptModel::load(&folder, tch::Device::cuda_if_available())?;
    let shape = model.input_shape();
    let photos = lens_engine::input::image_files(std::path::Path::new("data/photos"))?;
    let _guard = tch::no_grad_guard();
    for path in photos {
        let image = photo_from_bytes(&std::fs::read(&path)?, shape)?;
        let batch = Tensor::from_slice(&image.values)
            .view([
                1,
                shape.channels as i64,
                shape.height as i64,
                shape.width as i64,
            ])
            .to_device(model.device());
        let probabilities = Vec::<f32>::try_from(model.probabilities(&batch)?.view([-1]))?;
        let mut ranked: Vec<(usize, f32)> = probabilities.into_iter().enumerate().collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        let names: Vec<String> = ranked[..top]
            .iter()
            .map(|(c, p)| format!("{} {:.3}", model.class_names()[*c], p))
            .collect();
        println!(
            "{}: {}",
            path.file_name().unwrap().to_string_lossy(),
            names.join(", ")
        );
    }
    Ok(())
}
