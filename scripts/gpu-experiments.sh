#!/usr/bin/env bash
# Issue 11's measurements that a CPU cannot afford (PDA with 32 samples on
# EfficientNet-Lite0), on a GPU machine with Python's torch 2.11 (CUDA) but
# no Rust toolchain. Build here first (`cargo build --release -p lens-worker
# -p lens-lab`), then run from the repository root there, with
# target/release/evidence-lens and target/release/evidence-lens-lab,
# models/efficientnet-lite0/, models/digits/, data/photos/, data/fitting-photos/
# and data/DejaVuSans.ttf copied over:
#   scripts/gpu-experiments.sh OUT_DIR [STRIDE] [SECONDS]
# In order of importance, each step given what is left of SECONDS (default
# 570) and the next one started even when one fails or runs out of time:
#   agreement-efficientnet-lite0.json  (commit as docs/experiments/..., setup
#                                       installs it beside the model)
#   faithfulness.jsonl, maps/          (every method's deletion and insertion
#                                       curves and maps on every shipped photo)
#   estimators.json/.md                (few-pass estimators against PDA S = 32)
#   sanity.json/.md                    (the full cascade, every method, stride 10)
#   held-out.json/.md                  (patch statistics fitted without the photo)
#   figures/                           (Table 1 / Fig. 12 timed on the GPU,
#                                       Figs. 14/15/19 from maps/, Fig. 18)
# OUT_DIR/log.txt holds every step's output and its wall time. On one H200
# at stride 4 (2026-11-27): agreement 171 s, faithfulness 43 s, estimators
# 195 s, sanity (stride 10, six photos) 149 s, held-out 76 s.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: scripts/gpu-experiments.sh OUT_DIR [STRIDE] [SECONDS]}
stride=${2:-4}
deadline=$((SECONDS + ${3:-570}))
mkdir -p "$out"
PYTHON=${LENS_PYTHON:-python3}
torch_lib=$("$PYTHON" -c "import torch, os; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))")
export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
log="$out/log.txt"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | tee -a "$log"
lens=target/release/evidence-lens
lab=target/release/evidence-lens-lab

# step NAME STDOUT_FILE COMMAND...: runs COMMAND within the time left.
step() {
  local name=$1 stdout=$2 left=$((deadline - SECONDS)) start=$SECONDS
  shift 2
  if ((left < 10)); then
    echo "== $name: skipped, no time left" | tee -a "$log"
    return
  fi
  echo "== $name (at most ${left}s)" | tee -a "$log"
  timeout "$left" "$@" > "$stdout" 2> >(tee -a "$log" >&2)
  echo "== $name: exit $?, $((SECONDS - start))s" | tee -a "$log"
}

step agreement "$out/agreement.txt" "$lens" agreement --model efficientnet-lite0 --count 7 \
  --stride "$stride" --device cuda --out "$out/agreement-efficientnet-lite0.json"
step faithfulness "$out/faithfulness.jsonl" "$lens" explain data/photos --model efficientnet-lite0 \
  --device cuda --stride "$stride" --samples 10 \
  --method efficient-pda,pda,sampled-mean,occlusion,gradient,saliency,grad-cam \
  --evaluate blur,grey --out "$out/maps"
step estimators "$out/estimators.md" "$lab" estimators --model efficientnet-lite0 --count 7 \
  --stride "$stride" --device cuda --out "$out/estimators.json"
step sanity "$out/sanity.md" "$lab" sanity --model efficientnet-lite0 --count 7 --stride 10 \
  --device cuda --out "$out/sanity.json"
step held-out "$out/held-out.md" "$lab" held-out-statistics --model efficientnet-lite0 \
  --stride "$stride" --samples 10 --device cuda --out "$out/held-out.json"
step figures "$out/figures.txt" "$lab" figures --which 12,14,18 --device cuda \
  --maps "$out/maps" --stride "$stride" --timing-strides 10,4 --out "$out/figures"
