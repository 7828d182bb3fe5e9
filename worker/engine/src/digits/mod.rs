//! The handwritten-digits model the first slice explains: the network, its
//! training, the data it was trained on (which is also the marginal sampler's
//! data and the Laplace correction's N) and the held-out presets.
//!
//! Training ends by writing an ordinary model folder (`models/digits`:
//! traced TorchScript, class names, `model.toml`, training digits), so the
//! worker loads the digits network exactly as it loads a user's model.

pub mod mnist;
pub mod net;
pub mod train;

use std::path::Path;

use tch::nn::{ModuleT, VarStore};
use tch::{CModule, Device, Kind, Tensor};

use crate::models::{LoadModelError, LoadedModel, Placement, DIGITS};
use mnist::{Digits, CLASSES, SIDE};
use net::DigitsNet;

/// File names inside the model folder and the data folder.
pub const MODEL_FILE: &str = "model.pt";
pub const TRAINING_FILE: &str = "training-digits.safetensors";
/// The trained parameters by name, for the sanity checks.
pub const WEIGHTS_FILE: &str = "weights.safetensors";
pub const MNIST_FILE: &str = "mnist_5k.csv.gz";

pub use crate::input::DIGIT_SHAPE as SHAPE;

/// The digits model as the worker loads it, with the held-out presets.
pub struct DigitsKit {
    pub model: LoadedModel,
    /// One held-out digit per class, 0 to 9.
    pub presets: Vec<(u8, Vec<f32>)>,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Data(#[from] mnist::MnistError),
    #[error("{0} (run ./dev setup to train the digits network)")]
    Model(#[from] LoadModelError),
}

impl DigitsKit {
    pub fn load(models: &Path, data: &Path, device: Device) -> Result<Self, LoadError> {
        let model = LoadedModel::load_on(DIGITS, models, Placement::on(device))?;
        let presets = held_out_presets(data)?;
        Ok(DigitsKit { model, presets })
    }

    pub fn classifier(&self) -> &dyn crate::engine::Classifier {
        self.model.classifier.as_ref()
    }

    pub fn sampler(&self) -> &crate::engine::MarginalSampler {
        self.model
            .marginal
            .as_ref()
            .expect("the digits description names its training digits")
    }
}

/// The first held-out digit of each class.
pub fn held_out_presets(data: &Path) -> Result<Vec<(u8, Vec<f32>)>, mnist::MnistError> {
    let held_out = mnist::load_split(&data.join(MNIST_FILE))?.held_out;
    Ok((0..CLASSES as u8)
        .filter_map(|label| {
            let index = held_out.labels.iter().position(|&l| l == label)?;
            Some((label, held_out.image(index).to_vec()))
        })
        .collect())
}

/// Writes the trained network as a model folder: the traced module, class
/// names, its description, the training digits (for the marginal sampler)
/// and the named weights (for the sanity checks).
pub fn export(
    vs: &mut VarStore,
    net: &DigitsNet,
    train: &Digits,
    folder: &Path,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(folder)?;
    // Traced on the CPU so the file loads on any device; frozen, so the
    // weights become constants of the traced graph.
    vs.set_device(Device::Cpu);
    vs.freeze();
    vs.save(folder.join(WEIGHTS_FILE))?;
    let example = Tensor::zeros([1, 1, SIDE as i64, SIDE as i64], (Kind::Float, Device::Cpu));
    let module = CModule::create_by_tracing("digits", "forward", &[example], &mut |inputs| {
        vec![net.forward_t(&inputs[0], false)]
    })?;
    module.save(folder.join(MODEL_FILE))?;
    let classes: String = (0..CLASSES).map(|c| format!("{c}\n")).collect();
    std::fs::write(folder.join("classes.txt"), classes)?;
    let images =
        Tensor::from_slice(&train.pixels).view([train.len() as i64, 1, SIDE as i64, SIDE as i64]);
    Tensor::write_safetensors(&[("images", images)], folder.join(TRAINING_FILE))?;
    std::fs::write(folder.join("model.toml"), description(train.len()))?;
    Ok(())
}

fn description(training_images: usize) -> String {
    format!(
        r#"# The paper's six-layer digits network, trained at setup (evidence-lens train-digits).
name = "Handwritten digits (six-layer CNN)"
file = "{MODEL_FILE}"
classes = "classes.txt"
channels = 1
height = {SIDE}
width = {SIDE}
# Light ink on a dark background in [0, 1]; no further normalisation.
normalise = "inside"
output = "logits"
training_images = {training_images}
# Uploads are converted MNIST style (ink box to 20 x 20, centred by mass).
resize = "mnist-digit"
# The training digits (N x 1 x 28 x 28): the marginal sampler draws from them.
marginal = "{TRAINING_FILE}"
"#
    )
}
