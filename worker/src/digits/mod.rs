//! The handwritten-digits model the first slice explains: the network, its
//! training, the data it was trained on (which is also the marginal sampler's
//! data and the Laplace correction's N) and the held-out presets.

pub mod mnist;
pub mod net;
pub mod train;

use std::path::{Path, PathBuf};

use tch::nn::{self, ModuleT};
use tch::{Device, Tensor};

use crate::engine::{Classifier, InputShape, MarginalSampler};
use mnist::{Digits, CLASSES, SIDE};
use net::DigitsNet;

/// File names inside the models folder and the data folder.
pub const WEIGHTS_FILE: &str = "digits-net.safetensors";
pub const MNIST_FILE: &str = "mnist_5k.csv.gz";

pub const SHAPE: InputShape = InputShape {
    channels: 1,
    height: SIDE,
    width: SIDE,
};

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Data(#[from] mnist::MnistError),
    #[error("cannot load the digits network from {path}: {source} (run ./dev setup to train it)")]
    Weights {
        path: PathBuf,
        source: tch::TchError,
    },
}

/// The trained network, ready for the engine.
pub struct DigitsModel {
    vs: nn::VarStore,
    net: DigitsNet,
    training_images: usize,
}

impl DigitsModel {
    pub fn load(weights: &Path, training_images: usize, device: Device) -> Result<Self, LoadError> {
        let mut vs = nn::VarStore::new(device);
        let net = DigitsNet::new(&vs.root());
        vs.load(weights).map_err(|source| LoadError::Weights {
            path: weights.to_owned(),
            source,
        })?;
        Ok(DigitsModel {
            vs,
            net,
            training_images,
        })
    }

    pub fn net(&self) -> &DigitsNet {
        &self.net
    }
}

impl Classifier for DigitsModel {
    fn input_shape(&self) -> InputShape {
        SHAPE
    }
    fn num_classes(&self) -> usize {
        CLASSES
    }
    fn training_images(&self) -> usize {
        self.training_images
    }
    fn device(&self) -> Device {
        self.vs.device()
    }
    fn logits(&self, batch: &Tensor) -> Tensor {
        self.net.forward_t(batch, false)
    }
}

/// Everything the worker needs about digits, loaded once at start.
pub struct DigitsKit {
    pub model: DigitsModel,
    pub sampler: MarginalSampler,
    /// One held-out digit per class, 0 to 9.
    pub presets: Vec<(u8, Vec<f32>)>,
}

impl DigitsKit {
    pub fn load(models: &Path, data: &Path, device: Device) -> Result<Self, LoadError> {
        let split = mnist::load_split(&data.join(MNIST_FILE))?;
        let model = DigitsModel::load(&models.join(WEIGHTS_FILE), split.train.len(), device)?;
        let presets = presets(&split.held_out);
        let sampler = MarginalSampler::new(SHAPE, split.train.pixels);
        Ok(DigitsKit {
            model,
            sampler,
            presets,
        })
    }
}

/// The first held-out digit of each class.
fn presets(held_out: &Digits) -> Vec<(u8, Vec<f32>)> {
    (0..CLASSES as u8)
        .filter_map(|label| {
            let index = held_out.labels.iter().position(|&l| l == label)?;
            Some((label, held_out.image(index).to_vec()))
        })
        .collect()
}
