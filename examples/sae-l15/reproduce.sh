#!/usr/bin/env bash
# The layer-15 SAE quality run of docs/SAE.md: SmolLM2-135M resid_post over all of lee + enwiki
# (793,964 tokens, windows of 128), TopK 4,608 x k 64, then the held-out metrics; the committed
# checkpoint/ is its output (one pass: --epochs 1). About 35 min of harvest on 2 CPU cores, then
# about 4 min of training per pass.
set -euo pipefail
out=${1:-runs/sae-l15}
epochs=${2:-1}
interp-lab harvest --model smollm2-135m --dataset lee+enwiki --hooks blocks.15.hook_resid_post \
    --context-length 128 --batch-size 16 --out "$out/store"
interp-lab train-sae --store "$out/store" --layer 15 --top-k 64 --epochs "$epochs" --out "$out/checkpoint"
