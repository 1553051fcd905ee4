#!/usr/bin/env bash
# GPU check on a Linux machine with an NVIDIA GPU and no Rust toolchain.
#
#   scripts/gpu_check.sh [WUNET_BINARY] [OUT_DIR]
#
# Given a release binary built elsewhere (default: target/release/wunet), it:
#   1. makes sure a Vulkan loader and the NVIDIA ICD are visible (a loader shipped in
#      `vulkan-libs/` beside this script is used when the machine has none);
#   2. runs the PyTorch fixtures of tests/fixtures on the GPU and checks them (budget 1e-4);
#   3. runs `wunet bench` on the reference model (features 64–512, random weights) at 256² and
#      512² (`--json` into OUT_DIR);
#   4. where PyTorch with CUDA is installed, times PyTorch float32 (cuDNN, TF32 off) on the same
#      weights (tools/torch_bench.py) for the ratio.
# Prints a summary; everything lands in OUT_DIR (default: gpu_check_out/).
set -uo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
bin="${1:-$here/target/release/wunet}"
out="${2:-$here/gpu_check_out}"
mkdir -p "$out"
[ -x "$bin" ] || { echo "no wunet binary at $bin"; exit 2; }

# Vulkan loader.
if ! ldconfig -p 2>/dev/null | grep -q 'libvulkan.so.1'; then
  if [ -d "$here/scripts/vulkan-libs" ]; then
    export LD_LIBRARY_PATH="$here/scripts/vulkan-libs:${LD_LIBRARY_PATH:-}"
  else
    echo "warning: no libvulkan.so.1 on this machine and no scripts/vulkan-libs/"
  fi
fi
# NVIDIA's Vulkan ICD manifest: containers often ship the driver libraries without it.
if ! ls /usr/share/vulkan/icd.d/nvidia_icd*.json /etc/vulkan/icd.d/nvidia_icd*.json >/dev/null 2>&1; then
  lib=$(ldconfig -p 2>/dev/null | awk '/libGLX_nvidia.so.0/ {print $NF; exit}')
  if [ -n "$lib" ]; then
    cat > "$out/nvidia_icd.json" <<JSON
{ "file_format_version": "1.0.0", "ICD": { "library_path": "$lib", "api_version": "1.3.0" } }
JSON
    export VK_ICD_FILENAMES="$out/nvidia_icd.json"
  fi
fi
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/xdg-runtime-$(id -u)}"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | tee "$out/gpu.txt"

fail=0
echo "== fixtures (GPU vs PyTorch, budget 1e-4 · max|ref|)"
for m in "$here"/tests/fixtures/*.safetensors; do
  name=$(basename "$m" .safetensors)
  "$bin" infer -m "$m" "$here/tests/fixtures/${name}_input.npy" -o "$out/${name}.npy" --device gpu 2>>"$out/stderr.txt" \
    && "$bin" compare "$out/${name}.npy" "$here/tests/fixtures/${name}_output.npy" || fail=1
done

echo "== bench (reference model, random weights)"
"$bin" init --features 64,128,256,512 --in 3 --out 1 --seed 0 -o "$out/ref.safetensors" 2>>"$out/stderr.txt"
for s in 256 512; do
  "$bin" bench -m "$out/ref.safetensors" --size ${s}x${s} --runs 20 --json > "$out/bench_${s}.json" 2>>"$out/stderr.txt" || fail=1
  "$bin" bench -m "$out/ref.safetensors" --size ${s}x${s} --runs 20 2>>"$out/stderr.txt" | tee "$out/bench_${s}.txt" | head -8
done

if python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  echo "== PyTorch float32 (cuDNN, TF32 off) on the same weights"
  for s in 256 512; do
    python3 "$here/tools/torch_bench.py" "$out/ref.safetensors" --size $s --runs 20 | tee "$out/torch_${s}.txt"
  done
else
  echo "(no PyTorch with CUDA here: no ratio)"
fi
[ $fail = 0 ] && echo "gpu_check: all checks passed" || echo "gpu_check: FAILURES (see above and $out/stderr.txt)"
exit $fail
