#!/usr/bin/env bash
# Issue 11's measurements that a CPU cannot afford (PDA with 32 samples on
# EfficientNet-Lite0), on a GPU machine with Python's torch 2.11 (CUDA) but
# no Rust toolchain. Build here first (`cargo build --release -p lens-worker`),
# then run from the repository root there, with target/release/evidence-lens,
# models/efficientnet-lite0/ and data/photos/ copied over:
#   scripts/gpu-experiments.sh OUT_DIR [STRIDE]
# It writes OUT_DIR/agreement-efficientnet-lite0.json (commit it as
# docs/experiments/agreement-efficientnet-lite0.json: setup installs it
# beside the model) and OUT_DIR/faithfulness.jsonl (every method's deletion
# and insertion curves on every shipped photo), then the sanity checks
# (the full cascade, every method), the few-pass estimators against PDA
# S = 32 and the held-out patch statistics on every shipped photo
# (sanity.json, estimators.json, held-out.json; data/fitting-photos/ must
# be copied too). About 3 minutes on an H200 for the first two at stride 4;
# the others were not timed there yet.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: scripts/gpu-experiments.sh OUT_DIR [STRIDE]}
stride=${2:-4}
mkdir -p "$out"
PYTHON=${LENS_PYTHON:-python3}
torch_lib=$("$PYTHON" -c "import torch, os; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))")
export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
lens=target/release/evidence-lens
"$lens" agreement --model efficientnet-lite0 --count 7 --stride "$stride" --device cuda \
  --out "$out/agreement-efficientnet-lite0.json"
"$lens" explain data/photos --model efficientnet-lite0 --device cuda --stride "$stride" --samples 10 \
  --method efficient-pda,pda,sampled-mean,occlusion,gradient,saliency,grad-cam \
  --evaluate blur,grey --out "$out/maps" > "$out/faithfulness.jsonl"
"$lens" sanity --model efficientnet-lite0 --count 7 --stride 10 --device cuda \
  --out "$out/sanity.json" > "$out/sanity.md"
"$lens" estimators --model efficientnet-lite0 --count 7 --stride "$stride" --device cuda \
  --out "$out/estimators.json" > "$out/estimators.md"
"$lens" held-out-statistics --model efficientnet-lite0 --stride "$stride" --samples 10 --device cuda \
  --out "$out/held-out.json" > "$out/held-out.md"
