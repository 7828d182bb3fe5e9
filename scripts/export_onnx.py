"""Exports a model folder's TorchScript network to ONNX, for ONNX Runtime.

The same weights as the folder's `model.pt` (its `forward` only: Grad-CAM's
`features`/`head` stay with TorchScript). The ONNX model takes the same
`[B, C, H, W]` input in [0, 1] with any batch size and gives the same
logits to rounding. torch's default exporter (dynamo) does not take a
TorchScript module, so this uses the TorchScript exporter, which needs the
`onnx` package.

Usage: python export_onnx.py MODEL_DIR
Writes MODEL_DIR/model.onnx, checks it against the TorchScript module on a
random batch, and adds `onnx = "model.onnx"` to MODEL_DIR/model.toml.
"""

import os
import re
import sys
import warnings

import numpy as np
import onnxruntime
import torch

OPSET = 17


def input_shape(description):
    values = {}
    for key in ("channels", "height", "width"):
        match = re.search(rf"^{key}\s*=\s*(\d+)", description, re.MULTILINE)
        values[key] = int(match.group(1))
    return values["channels"], values["height"], values["width"]


def main(folder):
    description_path = os.path.join(folder, "model.toml")
    with open(description_path) as f:
        description = f.read()
    file = re.search(r'^file\s*=\s*"([^"]+)"', description, re.MULTILINE).group(1)
    module = torch.jit.load(os.path.join(folder, file)).eval()
    shape = input_shape(description)
    out = os.path.join(folder, "model.onnx")
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of dynamo, which
        # cannot read a TorchScript module.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (torch.rand(2, *shape),),
            out,
            dynamo=False,
            opset_version=OPSET,
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        )
    batch = torch.rand(3, *shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = module(batch).float().numpy()
    session = onnxruntime.InferenceSession(out, providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": batch.numpy()})[0]
    difference = float(np.abs(got - expected).max())
    if difference > 1e-3:
        sys.exit(f"{out}: logits differ from TorchScript's by {difference}")
    if not re.search(r"^onnx\s*=", description, re.MULTILINE):
        with open(description_path, "a") as f:
            f.write('# The same network for ONNX Runtime (scripts/export_onnx.py).\nonnx = "model.onnx"\n')
    print(f"{out}: logits within {difference:.1e} of TorchScript's")


if __name__ == "__main__":
    main(sys.argv[1])
