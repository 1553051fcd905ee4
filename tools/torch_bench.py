"""Time PyTorch float32 eager for a reference-architecture safetensors file: on CUDA (cuDNN,
TF32 off), the yardstick `scripts/gpu_check.sh` puts beside `wunet bench`; or on the CPU
(`--device cpu --threads N`), the one beside `wunet bench --device cpu`.

    python tools/torch_bench.py model.safetensors --size 256 --runs 20
    python tools/torch_bench.py model.safetensors --device cpu --threads 2 --runs 5
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from unet_ref import UNet  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: PyTorch's default)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    sync = torch.cuda.synchronize if a.device == "cuda" else (lambda: None)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    sd = {k: v.float() if v.is_floating_point() else v for k, v in load_file(a.model).items()}
    depth = sum(1 for k in sd if k.startswith("downs.") and k.endswith(".conv1.weight"))
    feats = [sd[f"downs.{i}.conv1.weight"].shape[0] for i in range(depth)]
    model = UNet(sd["downs.0.conv1.weight"].shape[1], sd["final_conv.weight"].shape[0], feats)
    model.load_state_dict(sd)
    model = model.to(a.device).eval()
    x = torch.randn(1, model_in(sd), a.size, a.size, device=a.device)
    with torch.no_grad():
        for _ in range(3):
            model(x)
        sync()
        times = []
        for _ in range(a.runs):
            t = time.perf_counter()
            model(x).cpu()  # end to end like wunet: includes the readback
            times.append((time.perf_counter() - t) * 1e3)
    engine, device = (("pytorch-cudnn-fp32", torch.cuda.get_device_name()) if a.device == "cuda"
                      else ("pytorch-eager-fp32", f"cpu, {torch.get_num_threads()} threads"))
    print(json.dumps({"engine": engine, "device": device,
                      "size": f"{a.size}x{a.size}", "median_ms": statistics.median(times), "min_ms": min(times)}))


def model_in(sd):
    return sd["downs.0.conv1.weight"].shape[1]


if __name__ == "__main__":
    main()
