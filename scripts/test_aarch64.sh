#!/usr/bin/env bash
# The aarch64 int8 kernels under qemu: with `-cpu max` (dot product: the `sdot` kernel must be
# picked) and `-cpu cortex-a53` (no dot product: the NEON fallback must be picked); every kernel
# bit-exact against the generic one, per GEMM and over whole networks. Run as root on Debian.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross >/dev/null
rustup target add aarch64-unknown-linux-gnu >/dev/null
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
for cpu in max cortex-a53; do
  if [ "$cpu" = max ]; then want=neon_dot_qgemm_u8i8_4x8; else want=neon_qgemm_u8i8_4x4; fi
  echo "== aarch64 under qemu -cpu $cpu (expects $want)"
  CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu -cpu $cpu" \
    WUNET_EXPECT_QGEMM=$want \
    cargo test --release --target aarch64-unknown-linux-gnu --lib --test int8 -- cpu:: simd_network
done
