"""Times Captum's Occlusion on the worker's own TorchScript model, for the
engine benchmark (`worker/engine/examples/bench_engine.rs` runs it beside ours on
the same input, so both measure the same network on the same machine).

Usage: python bench_captum.py MODEL.pt INPUT.npy CHANNELS WINDOW STRIDE BATCH DEVICE
INPUT.npy holds the model input as a (CHANNELS * H) x W float32 matrix.
Prints one JSON line: wall seconds, forward passes, torch threads.
"""

import json
import sys
import time

import numpy as np
import torch
from captum.attr import Occlusion


def main(model_path, input_path, channels, window, stride, batch, device):
    torch.set_grad_enabled(False)
    model = torch.jit.load(model_path, map_location=device).eval()
    matrix = np.load(input_path)
    x = torch.from_numpy(matrix).view(1, channels, -1, matrix.shape[1]).to(device)
    target = int(model(x).argmax())
    passes = 0

    def probabilities(batch_of_images):
        nonlocal passes
        passes += batch_of_images.shape[0]
        return model(batch_of_images).softmax(-1)

    occlusion = Occlusion(probabilities)
    start = time.perf_counter()
    attribution = occlusion.attribute(
        x,
        sliding_window_shapes=(channels, window, window),
        strides=(channels, stride, stride),
        baselines=0.5,
        target=target,
        perturbations_per_eval=batch,
    )
    attribution.sum().item()  # waits for the device
    wall = time.perf_counter() - start
    print(
        json.dumps(
            {
                "wall_seconds": wall,
                "forward_passes": passes,
                "torch_threads": torch.get_num_threads(),
                "captum": __import__("captum").__version__,
            }
        )
    )


if __name__ == "__main__":
    a = sys.argv[1:]
    main(a[0], a[1], int(a[2]), int(a[3]), int(a[4]), int(a[5]), a[6])
