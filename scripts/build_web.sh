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
# The threaded build (web/pkg-threads): the CPU engine on rayon's Web Workers, for pages that
# are cross-origin isolated (web/cpu_worker.js). WebAssembly threads need the standard library
# rebuilt with atomics, which only nightly can do: a pinned nightly with rust-src.
nightly=nightly-2026-10-30
rm -rf web/pkg-threads
threads() {
  rustup toolchain install "$nightly" --profile minimal --component rust-src \
    --target wasm32-unknown-unknown >/dev/null 2>&1 || rustup run "$nightly" rustc --version >/dev/null 2>&1 ||
    { echo "no $nightly toolchain" >&2; return 1; }
  # A shared, imported memory (up to wasm32's 4 GiB) and the thread-local-storage exports
  # wasm-bindgen's thread support expects (the linker does not add them by itself).
  local link=""
  for a in --shared-memory --max-memory=4294967296 --import-memory --export=__wasm_init_tls \
    --export=__tls_size --export=__tls_align --export=__tls_base; do
    link="$link -C link-arg=$a"
  done
  RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+atomics,+bulk-memory,+simd128$link" \
    cargo "+$nightly" build -Z build-std=panic_abort,std --profile web --lib \
    --target wasm32-unknown-unknown --features web-threads --target-dir target/web-threads &&
    wasm-bindgen --target web --no-typescript --out-dir web/pkg-threads \
      target/web-threads/wasm32-unknown-unknown/web/wunet.wasm
}
# The page loads the threaded package only where it was built (web/pkg/threads.js says).
if threads; then
  echo "export const threaded = true;" > web/pkg/threads.js
else
  rm -rf web/pkg-threads
  echo "web/pkg-threads not built: the CPU engine runs single-threaded" >&2
  echo "export const threaded = false;" > web/pkg/threads.js
fi
mkdir -p web/assets
cp assets/demo_unet.safetensors assets/cells.png web/assets/
for p in pkg pkg-threads; do
  f=web/$p/wunet_bg.wasm
  [ -f "$f" ] && echo "$f: $(stat -c %s "$f") bytes, $(gzip -9c "$f" | wc -c) gzipped"
done
exit 0
