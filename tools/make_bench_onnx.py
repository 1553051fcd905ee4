#!/usr/bin/env python3
"""Full-size ONNX models for the CPU and GPU benchmarks of imported graphs (never committed:
tens of MB each; never run in CI). Random weights, eval mode, TorchScript export with dynamic
N, H, W (opset 17):

    pip install torch segmentation-models-pytorch onnx
    python3 tools/make_bench_onnx.py OUT_DIR

writes OUT_DIR/reference.onnx (the source article's U-Net, features 64-512),
OUT_DIR/smp_resnet18.onnx (segmentation_models_pytorch Unet, ResNet-18 encoder, depth 5) and
OUT_DIR/milesial_bilinear.onnx (milesial's U-Net with bilinear upsampling, width 64), as
`scripts/bench_onnx.sh` expects.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__))))
from make_onnx_fixtures import MilesialUNet, load_reference_module, randomize  # noqa: E402


def export(model, path, cin):
    randomize(model, 0)
    model.eval()
    x = torch.rand(1, cin, 64, 64)
    dyn = {"input": {0: "n", 2: "h", 3: "w"}, "output": {0: "n", 2: "h", 3: "w"}}
    torch.onnx.export(model, x, path, dynamo=False, opset_version=17, input_names=["input"],
                      output_names=["output"], dynamic_axes=dyn)
    print(path, os.path.getsize(path) // (1 << 20), "MiB")


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "bench_models"
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    ref = load_reference_module().UNet(in_channels=3, out_channels=1, features=[64, 128, 256, 512])
    export(ref, os.path.join(out, "reference.onnx"), 3)
    import segmentation_models_pytorch as smp
    export(smp.Unet("resnet18", encoder_weights=None, in_channels=3, classes=1),
           os.path.join(out, "smp_resnet18.onnx"), 3)
    export(MilesialUNet(3, 2, bilinear=True, base=64), os.path.join(out, "milesial_bilinear.onnx"), 3)


if __name__ == "__main__":
    main()
