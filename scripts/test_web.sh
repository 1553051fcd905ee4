#!/usr/bin/env bash
# The browser test: build the page (scripts/build_web.sh), serve web/ on 127.0.0.1 (cross-origin
# isolated, so the CPU engine runs threaded), and drive it in Debian's headless Chromium (WebGPU
# on SwiftShader; then again without WebGPU) with playwright-core from
# tests/browser/package-lock.json (no browser download). The page runs a float fixture model
# (logits within 1e-4 · max|PyTorch|) and its int8 version (logits identical to the native int8
# GPU engine's, lavapipe here), then the demo through `segment`, checking that the overlay canvas
# shows the mask; any console error fails it. Needs: chromium, node + npm (apt).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build_web.sh
cargo build --release --quiet
W=target/release/wunet
t=web/test
rm -rf "$t" && mkdir -p "$t/calib"
cp tests/fixtures/d3_odd.safetensors tests/fixtures/d3_odd_input.npy tests/fixtures/d3_odd_output.npy "$t/"
cp tests/fixtures/d3_odd_input.npy "$t/calib/"
$W compress -m tests/fixtures/d3_odd.safetensors --int8 --calibrate "$t/calib" -o "$t/d3_odd_int8.safetensors"
$W infer -m "$t/d3_odd_int8.safetensors" "$t/d3_odd_input.npy" -o "$t/d3_odd_int8_gpu.npy" --device gpu
$W infer -m "$t/d3_odd_int8.safetensors" "$t/d3_odd_input.npy" -o "$t/d3_odd_int8_cpu.npy" --device cpu
# A 64 × 64 input: its planes are whole pages, so the GPU layout pads them (plan::plane_stride);
# the reference is the native CPU engine's output.
python3 - "$t/d3_64_input.npy" <<'PY'
import random, struct, sys
random.seed(7)
shape = (1, 3, 64, 64)
header = "{'descr': '<f4', 'fortran_order': False, 'shape': %s, }" % (shape,)
header += " " * (63 - (10 + len(header)) % 64) + "\n"
vals = [random.uniform(-1.0, 1.0) for _ in range(3 * 64 * 64)]
with open(sys.argv[1], "wb") as f:
    f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode())
    f.write(struct.pack("<%df" % len(vals), *vals))
PY
$W infer -m tests/fixtures/d3_odd.safetensors "$t/d3_64_input.npy" -o "$t/d3_64_cpu.npy" --device cpu
# The demo model on it: layers of 32–256 channels whose sizes are multiples of 4, so the page runs
# them as Winograd F(4×4, 3×3) where the adapter has subgroups (SwiftShader: 4 lanes).
cp assets/demo_unet.safetensors "$t/demo.safetensors"
$W infer -m "$t/demo.safetensors" "$t/d3_64_input.npy" -o "$t/demo_64_cpu.npy" --device cpu
# Imported models (ONNX, TorchScript exports: weights inside, as a page needs them): against
# PyTorch's outputs, on WebGPU (the graph kernels) and on the wasm CPU graph engine.
onnx_families="reference milesial_bilinear milesial_transposed smp_resnet18_scse smp_resnet34_scse monai_basicunet
  monai_unet_res nnunet_plain attention_unet spatial_attention_unet"
for m in $onnx_families; do
  cp tests/fixtures/onnx/$m/torchscript.onnx "$t/$m.onnx"
  cp tests/fixtures/onnx/$m/input.npy "$t/${m}_input.npy"
  cp tests/fixtures/onnx/$m/output.npy "$t/${m}_output.npy"
done
# A broken file: the page's error must carry the CLI's message.
printf '\001\002\003' > "$t/bad.safetensors"
$W info -m "$t/bad.safetensors" 2> "$t/bad_cli.txt" && { echo "the CLI accepted a broken file" >&2; exit 1; } || true
cat > "$t/case.json" <<JSON
{"cases": [
 {"name": "d3_odd float32 vs PyTorch", "model": "test/d3_odd.safetensors", "input": "test/d3_odd_input.npy",
  "want": "test/d3_odd_output.npy", "rel": 1e-4, "exact": false, "device": "gpu"},
 {"name": "d3_odd int8 vs native int8 GPU", "model": "test/d3_odd_int8.safetensors", "input": "test/d3_odd_input.npy",
  "want": "test/d3_odd_int8_gpu.npy", "rel": 0, "exact": true, "device": "gpu"},
 {"name": "d3_odd float32 at 64x64 (padded planes) vs native CPU", "model": "test/d3_odd.safetensors",
  "input": "test/d3_64_input.npy", "want": "test/d3_64_cpu.npy", "rel": 1e-4, "exact": false, "device": "gpu"},
 {"name": "demo float32 at 64x64 (Winograd layers) vs native CPU", "model": "test/demo.safetensors",
  "input": "test/d3_64_input.npy", "want": "test/demo_64_cpu.npy", "rel": 1e-4, "exact": false, "device": "gpu",
  "winograd": true},
 {"name": "d3_odd float32 on the wasm CPU engine vs PyTorch", "model": "test/d3_odd.safetensors",
  "input": "test/d3_odd_input.npy", "want": "test/d3_odd_output.npy", "rel": 1e-4, "exact": false, "device": "cpu"},
 {"name": "d3_odd int8 on the wasm CPU engine (simd128) vs native int8 CPU", "model": "test/d3_odd_int8.safetensors",
  "input": "test/d3_odd_input.npy", "want": "test/d3_odd_int8_cpu.npy", "rel": 0, "exact": true, "device": "cpu"},
 {"name": "d3_odd float32 on the wasm CPU engine, one thread, vs PyTorch", "model": "test/d3_odd.safetensors",
  "input": "test/d3_odd_input.npy", "want": "test/d3_odd_output.npy", "rel": 1e-4, "exact": false, "device": "cpu",
  "threads": false},
 {"name": "d3_odd int8 on the wasm CPU engine, one thread, vs native int8 CPU", "model": "test/d3_odd_int8.safetensors",
  "input": "test/d3_odd_input.npy", "want": "test/d3_odd_int8_cpu.npy", "rel": 0, "exact": true, "device": "cpu",
  "threads": false}
]}
JSON
# Every ONNX family: on WebGPU and on the wasm CPU engine (threaded where the page allows).
python3 - "$t/case.json" $onnx_families <<'PY'
import json, sys
path, families = sys.argv[1], sys.argv[2:]
spec = json.load(open(path))
for m in families:
    for device, engine in (("gpu", "WebGPU"), ("cpu", "the wasm CPU engine")):
        spec["cases"].append({"name": f"{m} (ONNX) on {engine} vs PyTorch", "model": f"test/{m}.onnx",
                              "input": f"test/{m}_input.npy", "want": f"test/{m}_output.npy",
                              "rel": 1e-4, "exact": False, "device": device})
spec["cases"].append({"name": "spatial_attention_unet (ONNX) on the wasm CPU engine, one thread, vs PyTorch",
                      "model": "test/spatial_attention_unet.onnx", "input": "test/spatial_attention_unet_input.npy",
                      "want": "test/spatial_attention_unet_output.npy", "rel": 1e-4, "exact": False, "device": "cpu",
                      "threads": False})
json.dump(spec, open(path, "w"), indent=1)
PY
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
port=$((20000 + RANDOM % 20000))
(cd web && exec python3 ../scripts/serve_web.py $port) & srv=$!
trap 'kill $srv 2>/dev/null' EXIT
sleep 1
node tests/browser/drive.js "http://127.0.0.1:$port/index.html?test=1" 900
# Again in a browser without WebGPU: the CPU cases and the demo on the CPU engine (threaded).
WUNET_NO_WEBGPU=1 node tests/browser/drive.js "http://127.0.0.1:$port/index.html?test=1" 900
