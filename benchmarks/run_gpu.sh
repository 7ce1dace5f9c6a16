#!/usr/bin/env bash
# The one prepared script for a lent GPU machine: CUDA checks, then the training and encoder benchmarks in bf16.
# Carries transformers 5.24 as a wheel (.whl/, not committed); results land in $OUT (or ./gpu-results).
# Training (issue 24): EVA02-AT-B/16, 4 frames, bf16 autocast, 256 clips per GPU with activation checkpointing, eager
# and compiled: peak memory, clips/s, MFU against the bf16 matmul peak measured in the same run, and clips/s per peak
# TFLOP/s against AVION's 0.37 (goal >= 0.45; AVION: 19 GB at this batch on an A5000). About 3 minutes (at most 6),
# most of it inductor compiling; each finished configuration is in train.json even if a later one fails.
# The same code on a CPU in a few minutes: python benchmarks/bench_train.py --only b16 --tiny --batch 8 --steps 2 \
#   --checkpointing on --compile both
set -euo pipefail
OUT=${OUT:-gpu-results}; mkdir -p "$OUT"
if ls .whl/transformers-*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
fi
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" | tee -a "$OUT/gpu.txt"
python3 benchmarks/cuda_check.py 2>&1 | tee "$OUT/cuda_check.txt"
# a time limit of its own, so that a compile that runs long still leaves the encoder benchmarks their turn
timeout 360 python3 benchmarks/bench_train.py --only b16 --batch 256 --frames 4 --checkpointing on --compile both \
  --steps 8 --json "$OUT/train.json" 2>&1 | tee "$OUT/train.txt" || echo "bench_train.py failed or timed out" | tee -a "$OUT/train.txt"
python3 benchmarks/bench_encoder.py --frames 4 16 --batch 8 --reps 10 --attn sdpa eager --json "$OUT/encoder.json" 2>&1 | tee "$OUT/encoder.txt"
python3 benchmarks/bench_encoder.py --preset l14 --frames 16 --batch 4 --reps 5 --json "$OUT/encoder_l14.json" 2>&1 | tee "$OUT/encoder_l14.txt"
