#!/usr/bin/env bash
# Build the browser package: the library for wasm32 with the `web` feature (wgpu's WebGPU
# backend), wasm-bindgen's JS glue into web/pkg/, and the default model and sample image copied into web/assets/. Works on a fresh machine: it
# installs the wasm32 target and wasm-bindgen-cli at exactly the version of the wasm-bindgen crate.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add wasm32-unknown-unknown >/dev/null 2>&1 || true
want=$(cargo metadata --format-version 1 --locked 2>/dev/null |
  python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"]=="wasm-bindgen"))')
have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
if [ "$have" != "$want" ]; then
  echo "installing wasm-bindgen-cli $want (the wasm-bindgen crate's version)"
  # --locked where its lockfile still resolves; otherwise the same version with fresh dependencies.
  cargo install --locked wasm-bindgen-cli --version "$want" ||
    cargo install wasm-bindgen-cli --version "$want"
fi
# simd128 (every browser with WebGPU has it): the CPU fallback's loops vectorize.
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+simd128" \
  cargo build --profile web --lib --target wasm32-unknown-unknown --features web
wasm=target/wasm32-unknown-unknown/web/wunet.wasm
rm -rf web/pkg
wasm-bindgen --target web --no-typescript --out-dir web/pkg "$wasm"
# No wasm-opt: Debian's binaryen (108) breaks wasm-bindgen's externref table, and the module is
# well under the size budget without it.
mkdir -p web/assets
cp assets/demo_unet.safetensors assets/cells.png web/assets/
echo "web/pkg/wunet_bg.wasm: $(stat -c %s web/pkg/wunet_bg.wasm) bytes, $(gzip -9c web/pkg/wunet_bg.wasm | wc -c) gzipped"
