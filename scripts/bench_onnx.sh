#!/usr/bin/env bash
# wunet's CPU graph engine and ONNX Runtime's CPU provider on the same .onnx files, side by side
# in one run (the machine is noisy: compare within one run; the two alternate per round).
#   scripts/bench_onnx.sh DIR [SIZE] [THREADS] [ROUNDS]
# DIR holds the models of `python3 tools/make_bench_onnx.py DIR` (PyTorch, offline).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:?usage: scripts/bench_onnx.sh DIR [SIZE] [THREADS] [ROUNDS]}
size=${2:-256}
threads=${3:-2}
rounds=${4:-2}
cargo build --release --quiet
W=target/release/wunet
export RAYON_NUM_THREADS=$threads
ms() { sed -n 's/.*"median_ms": *\([0-9.]*\).*/\1/p'; }
echo "| model | round | wunet cpu f32 (graph) ms | onnxruntime cpu fp32 ms | ratio |"
echo "|---|---|---|---|---|"
for f in "$dir"/*.onnx; do
  for r in $(seq "$rounds"); do
    w=$($W bench -m "$f" --device cpu --runs 5 --size "${size}x${size}" --json | ms)
    o=$(python3 tools/ort_onnx_bench.py "$f" --shape "1,3,$size,$size" --threads "$threads" --runs 5 | ms)
    echo "| $(basename "$f" .onnx) | $r | $w | $o | $(python3 -c "print(f'{$w/$o:.2f}')") |"
  done
done
