//! The paper's six-layer digits network (Section 3, "Qualitative
//! Experiments"): two 5 x 5 convolutions with 32 and 64 channels, each followed
//! by ReLU and 2 x 2 max-pooling, a 1024-unit fully connected layer with
//! dropout, and 10 outputs (logits).

use std::path::Path;

use tch::nn::{self, ModuleT};
use tch::{Device, TchError, Tensor};

use super::mnist::{CLASSES, SIDE};
use crate::engine::{Classifier, InputShape};

#[derive(Debug)]
pub struct DigitsNet {
    conv1: nn::Conv2D,
    conv2: nn::Conv2D,
    fc1: nn::Linear,
    fc2: nn::Linear,
}

impl DigitsNet {
    pub fn new(vs: &nn::Path) -> Self {
        let same = nn::ConvConfig {
            padding: 2,
            ..Default::default()
        };
        DigitsNet {
            conv1: nn::conv2d(vs / "conv1", 1, 32, 5, same),
            conv2: nn::conv2d(vs / "conv2", 32, 64, 5, same),
            fc1: nn::linear(vs / "fc1", 64 * 7 * 7, 1024, Default::default()),
            fc2: nn::linear(vs / "fc2", 1024, CLASSES as i64, Default::default()),
        }
    }
}

impl ModuleT for DigitsNet {
    /// `[B, 1, 28, 28]` grey values in [0, 1] -> `[B, 10]` logits.
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        xs.view([-1, 1, SIDE as i64, SIDE as i64])
            .apply(&self.conv1)
            .relu()
            .max_pool2d_default(2)
            .apply(&self.conv2)
            .relu()
            .max_pool2d_default(2)
            .flatten(1, -1) // not flat_view: its batch size would be traced as a constant
            .apply(&self.fc1)
            .relu()
            .dropout(0.5, train)
            .apply(&self.fc2)
    }
}

/// The network with its parameters by name (`conv1.weight`, ...), for the
/// sanity checks that re-draw them: the shipped `model.pt` is traced and
/// frozen, its weights constants of the graph.
pub struct DigitsNetClassifier {
    vs: nn::VarStore,
    net: DigitsNet,
    training_images: usize,
}

impl DigitsNetClassifier {
    pub fn new(vs: nn::VarStore, net: DigitsNet, training_images: usize) -> Self {
        DigitsNetClassifier {
            vs,
            net,
            training_images,
        }
    }

    /// The weights `export` saved beside the traced module.
    pub fn load(weights: &Path, device: Device, training_images: usize) -> Result<Self, TchError> {
        let mut vs = nn::VarStore::new(device);
        let net = DigitsNet::new(&vs.root());
        vs.load(weights)?;
        vs.freeze();
        Ok(Self::new(vs, net, training_images))
    }

    /// Every parameter, input layer first (the names sort in the network's
    /// order: conv1, conv2, fc1, fc2). The tensors share the network's storage.
    pub fn named_parameters(&self) -> Vec<(String, Tensor)> {
        let mut named: Vec<_> = self.vs.variables().into_iter().collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        named
    }
}

impl Classifier for DigitsNetClassifier {
    fn input_shape(&self) -> InputShape {
        super::SHAPE
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
    fn logits(&self, batch: &Tensor) -> Result<Tensor, TchError> {
        Ok(self.net.forward_t(batch, false))
    }
}
