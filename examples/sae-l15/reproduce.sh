#!/usr/bin/env bash
# The layer-15 SAE quality run of docs/SAE.md: SmolLM2-135M resid_post over all of lee + enwiki
# (793,964 tokens, windows of 128), TopK 4,608 x k 64, three passes, then the held-out metrics.
# About 35 min of harvest and 12 min of training on 2 CPU cores.
set -euo pipefail
out=${1:-runs/sae-l15}
interp-lab harvest --model smollm2-135m --dataset lee+enwiki --hooks blocks.15.hook_resid_post \
    --context-length 128 --batch-size 16 --out "$out/store"
interp-lab train-sae --store "$out/store" --layer 15 --top-k 64 --epochs 3 --out "$out/topk-k64"
