#!/usr/bin/env bash
# Serve web/ on 127.0.0.1 (default port 8080): open http://127.0.0.1:8080/ in a browser with
# WebGPU, drop an image, see the mask. Run scripts/build_web.sh first.
set -euo pipefail
cd "$(dirname "$0")/../web"
[ -f pkg/wunet.js ] || { echo "web/pkg is missing: run scripts/build_web.sh first" >&2; exit 2; }
exec python3 ../scripts/serve_web.py "${1:-8080}"
