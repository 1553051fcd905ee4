"""Prune a reference-architecture safetensors model with PyTorch's own recipe (the source
article's): `torch.nn.utils.prune.l1_unstructured(module, "weight", amount)` then `prune.remove` on
every nn.Conv2d, ConvTranspose2d left dense. The result is the oracle for `wunet compress
--prune-scope layer` (tests/compress.rs).

    python tools/prune_fixture.py tests/fixtures/d3_odd.safetensors 0.3 -o tests/fixtures/prune/d3_odd_l1_30.safetensors
"""
import argparse
import os
import sys

import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file
from torch.nn.utils import prune

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from unet_ref import UNet, features_of  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("amount", type=float)
    ap.add_argument("-o", "--output", required=True)
    a = ap.parse_args()
    sd = {k: v.float() if v.is_floating_point() else v for k, v in load_file(a.model).items()}
    model = UNet(*features_of(sd))
    model.load_state_dict(sd)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            prune.l1_unstructured(m, "weight", amount=a.amount)
            prune.remove(m, "weight")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, a.output)


if __name__ == "__main__":
    main()
