#!/usr/bin/env python3
"""Time ONNX Runtime's CPU provider on an ONNX file, as the yardstick for wunet's graph engine
on the very same file (`scripts/bench_onnx.sh` runs both side by side).

    pip install numpy onnxruntime
    python3 tools/ort_onnx_bench.py MODEL.onnx --shape 1,3,256,256 --threads 2 --runs 5

Prints one JSON line: median_ms, min_ms, runs, threads, onnxruntime version.
"""
import argparse
import json
import time

import numpy as np
import onnxruntime as ort


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--shape", default="1,3,256,256")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    shape = tuple(int(v) for v in a.shape.split(","))
    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    so.inter_op_num_threads = 1
    s = ort.InferenceSession(a.model, so, providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name
    # As wunet bench's input: deterministic values in [-1, 1).
    n = int(np.prod(shape))
    x = ((np.arange(n, dtype=np.float64) * 0.618034) % 1.0 * 2.0 - 1.0).astype(np.float32).reshape(shape)
    s.run(None, {name: x})
    ts = []
    for _ in range(a.runs):
        t = time.perf_counter()
        s.run(None, {name: x})
        ts.append((time.perf_counter() - t) * 1e3)
    ts.sort()
    print(json.dumps({"engine": f"onnxruntime-{ort.__version__} cpu fp32", "median_ms": ts[len(ts) // 2],
                      "min_ms": ts[0], "runs": a.runs, "threads": a.threads}))


if __name__ == "__main__":
    main()
