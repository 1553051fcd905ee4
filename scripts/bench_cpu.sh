#!/usr/bin/env bash
# The CPU yardsticks side by side in one run (the machine is noisy: compare within one run).
#   scripts/bench_cpu.sh [MODEL.safetensors] [SIZE] [THREADS]
# Default model: the reference U-Net (features 64–512, random weights, made by `wunet init`).
# ONNX Runtime and PyTorch rows need `pip install numpy onnx onnxruntime safetensors torch`;
# they are skipped when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
size=${2:-256}
threads=${3:-2}
cargo build --release --quiet
W=target/release/wunet
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
model=${1:-$tmp/ref.safetensors}
[ -f "$model" ] || $W init -o "$model" >/dev/null
$W compress -m "$model" --int8 -o "$tmp/q.safetensors" >/dev/null 2>&1
export RAYON_NUM_THREADS=$threads
row() { printf '| %-40s | %8s |\n' "$1" "$2"; }
ms() { sed -n 's/.*"median_ms": *\([0-9.]*\).*/\1/p'; }
echo "model $model at ${size}x${size}, $threads threads"
row engine "median ms"
row "wunet int8 ($($W bench -m "$tmp/q.safetensors" --device cpu --runs 1 --warmup 0 --size ${size}x${size} --json | sed -n 's/.*"kernel":"\([^"]*\)".*/\1/p'))" \
    "$($W bench -m "$tmp/q.safetensors" --device cpu --runs 10 --size ${size}x${size} --json | ms)"
row "wunet int8 (WUNET_QGEMM=avx2)" \
    "$(WUNET_QGEMM=avx2 $W bench -m "$tmp/q.safetensors" --device cpu --runs 3 --size ${size}x${size} --json | ms)"
row "wunet fp32" "$($W bench -m "$model" --device cpu --runs 5 --size ${size}x${size} --json | ms)"
if python3 -c "import onnxruntime, onnx, safetensors" 2>/dev/null; then
  python3 ../shared/anchors/ort_bench.py "$model" --shape 1,3,$size,$size --threads "$threads" 2>/dev/null |
    sed -n 's/^\(onnxruntime-[0-9.]*\) \([a-z0-9]*\) .*median \([0-9.]*\) ms.*/\1 \2 \3/p' |
    while read -r name prec t; do row "$name $prec" "$t"; done
else
  echo "(ONNX Runtime rows skipped: pip install numpy onnx onnxruntime safetensors)"
fi
if python3 -c "import torch, safetensors" 2>/dev/null; then
  row "PyTorch fp32 eager" "$(python3 tools/torch_bench.py "$model" --device cpu --threads "$threads" --size "$size" --runs 5 | ms)"
else
  echo "(PyTorch row skipped: pip install torch safetensors)"
fi
