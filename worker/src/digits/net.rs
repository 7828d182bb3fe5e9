//! The paper's six-layer digits network (Section 3, "Qualitative
//! Experiments"): two 5 x 5 convolutions with 32 and 64 channels, each followed
//! by ReLU and 2 x 2 max-pooling, a 1024-unit fully connected layer with
//! dropout, and 10 outputs (logits).

use tch::nn::{self, ModuleT};
use tch::Tensor;

use super::mnist::{CLASSES, SIDE};

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
