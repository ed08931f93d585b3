#!/usr/bin/env bash
# The CUDA paths in one prepared run (about 5 minutes on one H100/H200 with 16 cores); output in $OUT
# (or benchmarks/results):
# - extraction (issue 4): the naive per-image loop vs retbench's pipeline on CUDA (fp32 eager /
#   channels_last, fp16 with and without channels_last, fp16 with --decode fast, bf16), forward-only throughput and feature
#   deviation, random-init resnet34, DINOv2 ViT-S/14, CLIP ViT-B/32;
# - evaluation (issue 3): retbench.metrics.evaluate on CUDA vs the CPU numba path (and the seed's loop).
#
#   bash benchmarks/gpu_extract.sh                 # PYTHON=... to pick the interpreter
#   RETBENCH_BENCH_DATA=DIR bash benchmarks/gpu_extract.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${PYTHON:-}" ]; then PY=$PYTHON; elif [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
DATA=${RETBENCH_BENCH_DATA:-}
if [ -z "$DATA" ]; then
  # ../shared does not travel to a device machine; the bundled demo set (300 clothing photos) always does
  for d in ../shared/data/clothing10 shared/data/clothing10 src/retbench/demo_data/clothing-demo; do
    if [ -f "$d/list_of_images.txt" ]; then DATA=$d; break; fi
  done
fi
DEST=${OUT:-benchmarks/results}
mkdir -p "$DEST"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
{
  echo "# $(date -u +%FT%TZ) $(hostname)"; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
  echo "cores: $(nproc)"; uptime
  timeout 360 "$PY" benchmarks/extract.py --device cuda --dataset "$DATA" --n 3072 --naive-n 512 --batch-size 64 --rounds 2 --quiet-wait 0 \
    --models resnet34 dinov2_vits14 clip_vitb32 --modes fp32-eager fp32 fp16-eager fp16 fp16-fast bf16 \
    --json "$DEST/extract_cuda.json"
} 2>&1 | tee "$DEST/extract_cuda.txt" || echo "extraction benchmark failed (see above)"
timeout 180 "$PY" benchmarks/gpu_evaluate.py --sizes 5823 20000 100000 --json "$DEST/evaluate_cuda.json" 2>&1 \
  | tee "$DEST/evaluate_cuda.txt"
