"""Builds a tiny ONNX-only model folder whose evidence is known by hand.

The network reads a 28 x 28 grey digit and says whether its ink sits on the
left or the right: s = sum of the pixels of the left half minus those of the
right half, times WEIGHT; logits (left, right) = (s, -s). So
P(left) = sigmoid(2 s), and the drop in P(left) when a window turns grey
follows from the pixels alone. Made with the `onnx` package's helpers (no
framework), as any tool's export would arrive: `model.onnx`, the class
names, a `model.toml` with `file = "model.onnx"` and, for the marginal
sampler, a few training images as safetensors (written by hand: the format
is a JSON header and raw little-endian floats).

Usage: python left_right.py FOLDER [--input-rank 2]
(`--input-rank 2` takes N x 784 instead of N x 1 x 28 x 28: a model the
worker must refuse with a clear reason.)
"""

import json
import os
import struct
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

WEIGHT = 0.02
SIDE = 28
TRAINING_IMAGES = 8
# Every training image is this grey: the marginal sampler's mean.
TRAINING_GREY = 0.25


def weights():
    """WEIGHT on the left half, -WEIGHT on the right, for the left class."""
    column = np.tile(np.arange(SIDE), SIDE)
    left = np.where(column < SIDE // 2, WEIGHT, -WEIGHT).astype(np.float32)
    return np.stack([left, -left], axis=1)  # 784 x 2


def network(input_rank):
    if input_rank == 4:
        shape = ["batch", 1, SIDE, SIDE]
        nodes = [helper.make_node("Flatten", ["image"], ["flat"], axis=1)]
        flat = "flat"
    else:
        shape = ["batch", SIDE * SIDE]
        nodes = []
        flat = "image"
    nodes.append(helper.make_node("MatMul", [flat, "weights"], ["logits"]))
    graph = helper.make_graph(
        nodes,
        "left-right",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 2])],
        initializer=[numpy_helper.from_array(weights(), "weights")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def write_safetensors(path, name, array):
    data = array.astype("<f4").tobytes()
    header = {name: {"dtype": "F32", "shape": list(array.shape), "data_offsets": [0, len(data)]}}
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(encoded)))
        f.write(encoded)
        f.write(data)


def main(folder, input_rank):
    os.makedirs(folder, exist_ok=True)
    onnx.save(network(input_rank), os.path.join(folder, "model.onnx"))
    with open(os.path.join(folder, "classes.txt"), "w") as f:
        f.write("left\nright\n")
    images = np.full((TRAINING_IMAGES, 1, SIDE, SIDE), TRAINING_GREY, np.float32)
    write_safetensors(os.path.join(folder, "training.safetensors"), "images", images)
    with open(os.path.join(folder, "model.toml"), "w") as f:
        f.write(
            'name = "Left or right (ONNX only)"\n'
            'file = "model.onnx"\n'
            'classes = "classes.txt"\n'
            f"channels = 1\nheight = {SIDE}\nwidth = {SIDE}\n"
            'normalise = "inside"\n'
            'output = "logits"\n'
            f"training_images = {TRAINING_IMAGES}\n"
            'resize = "mnist-digit"\n'
            'marginal = "training.safetensors"\n'
        )


if __name__ == "__main__":
    arguments = sys.argv[1:]
    rank = 4
    if "--input-rank" in arguments:
        at = arguments.index("--input-rank")
        rank = int(arguments[at + 1])
        del arguments[at : at + 2]
    main(arguments[0], rank)
