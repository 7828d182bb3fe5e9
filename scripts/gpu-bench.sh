#!/usr/bin/env bash
# The engine benchmark on a GPU machine that has Python's torch 2.11 (CUDA)
# but no Rust toolchain. Build here first:
#   cargo build --release --example bench_engine
#   mkdir -p target/pylib && cp -r .venv/lib/python3*/site-packages/captum target/pylib/
# then, from the repository root on the GPU machine, with the binary, the
# model folder, the photos and target/pylib copied over
# (target/release/examples/bench_engine, models/efficientnet-lite0/,
# data/photos/), run:
#   scripts/gpu-bench.sh [BATCH] [SAMPLES]
# Captum runs where that machine's Python can import it (target/pylib is put
# on its path); otherwise its row is left out (the GPU targets are absolute
# times).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${LENS_PYTHON:-python3}
torch_lib=$("$PYTHON" -c "import torch, os; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))")
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
export PYTHONPATH="$PWD/target/pylib${PYTHONPATH:+:$PYTHONPATH}"
LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" LENS_PYTHON="$PYTHON" \
  target/release/examples/bench_engine data/photos/chelsea.png ${1:+"$1"} ${2:+"$2"}
