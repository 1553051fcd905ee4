"""Write the default model's test set: synthetic images from the generator that trained it
(`tools/train_demo.py`), drawn from a random stream of their own (neither training, validation
nor the sample), with their ground-truth masks. `wunet eval --data tests/data/cells_test` scores a
model on it.

    python tools/make_testset.py --seed 0 --n 16 --size 128 -o tests/data/cells_test
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_demo import render, write_png  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("-o", "--out", required=True)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    # train_demo spawns 4 streams (train, val, stats, sample) from the same seed; this is the 5th.
    stream = np.random.SeedSequence(a.seed).spawn(5)[4]
    rng = np.random.default_rng(stream)
    for i in range(a.n):
        img, mask = render(rng, a.size, a.size)
        write_png(os.path.join(a.out, f"cells_{i:02d}.png"), img)
        write_png(os.path.join(a.out, f"cells_{i:02d}_mask.png"), mask.astype(np.uint8) * 255)
    print(f"wrote {a.n} images and masks to {a.out}")


if __name__ == "__main__":
    main()
