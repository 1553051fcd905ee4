#!/usr/bin/env bash
# onnxruntime-web on an ONNX file in headless Chromium (WebGPU on SwiftShader, or wasm): the
# yardstick for the page on the very same imported model. The shared yardstick
# (../shared/anchors/ortweb) builds its model from a safetensors file; this runs its page on
# MODEL.onnx as it is (weights inside: a TorchScript export).
#   scripts/ortweb_onnx.sh MODEL.onnx SHAPE EP [THREADS]     e.g. ... m.onnx 1,3,128,128 webgpu
# Prints the page's JSON (median_ms, min_ms, first_run_ms, create_ms, ...).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
anchors=$here/../../shared/anchors/ortweb
model=$(realpath "$1") shape=$2 ep=$3 threads=${4:-2}
w=${WUNET_ORTWEB_DIR:-${TMPDIR:-/tmp}/wunet-ortweb-onnx}
mkdir -p "$w/work" && cp "$anchors/bench.html" "$anchors/drive.js" "$anchors/serve.py" "$w/" && cd "$w"
[ -d node_modules/onnxruntime-web ] || { npm init -y >/dev/null; npm install -q onnxruntime-web playwright-core@1 >/dev/null 2>&1; }
cp "$model" work/unet.onnx
python3 - "$shape" <<'PY'
import json, sys, numpy as np
shape = [int(v) for v in sys.argv[1].split(",")]
np.random.default_rng(0).standard_normal(shape, dtype=np.float32).tofile("work/x.f32")
json.dump({"shape": shape}, open("work/case.json", "w"))
PY
port=$((20000 + RANDOM % 20000))
python3 serve.py $port coi & srv=$!
trap 'kill $srv 2>/dev/null' EXIT
sleep 1
node drive.js "http://127.0.0.1:$port/bench.html?ep=$ep&threads=$threads&bundle=ort.min.mjs" 3000 | sed -n 's/^RESULT //p'
