#!/usr/bin/env bash
# The one prepared script for a lent GPU machine: CUDA checks, then the encoder and training benchmarks in bf16.
# Carries transformers 5.24 as a wheel (.whl/, not committed); results land in $OUT (or ./gpu-results).
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
python3 benchmarks/bench_encoder.py --frames 4 16 --batch 8 --reps 10 --attn sdpa eager --json "$OUT/encoder.json" 2>&1 | tee "$OUT/encoder.txt"
python3 benchmarks/bench_encoder.py --preset l14 --frames 16 --batch 4 --reps 5 --json "$OUT/encoder_l14.json" 2>&1 | tee "$OUT/encoder_l14.txt"
python3 benchmarks/bench_train.py --only b16 --batch 32 --frames 4 --steps 8 --json "$OUT/train.json" 2>&1 | tee "$OUT/train.txt"
