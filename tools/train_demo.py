#!/usr/bin/env python3
"""Train wunet's demo model: a small reference U-Net that segments cells in synthetic
fluorescence-microscopy images. Offline (CPU, torch + numpy + safetensors); nothing is downloaded.

  python tools/train_demo.py --seed 0

writes assets/demo_unet.safetensors (float32, metadata input_mean / input_std), assets/cells.png
(a fresh 256x256 sample, never seen in training), assets/cells_mask.png (its ground truth, 0/255)
and, with --pred, PyTorch's predicted mask for cells.png (logit > 0, i.e. sigmoid > 0.5).

The images: a dark, noisy background under uneven illumination; a few dozen bright, soft-edged,
textured ellipses (the cells: random sizes, elongations and orientations, some touching, some with
a darker nucleus); distractors that are not cells (small bright specks, faint streaks); then optical
blur, signal-dependent Gaussian noise and 8-bit quantization. The target is the union of the cell
ellipses.
"""
import argparse
import math
import os
import struct
import sys
import time
import zlib

import numpy as np
import torch
from torch.nn import functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_torch import build_model, save_safetensors, make_metadata  # noqa: E402
from unet_ref import UNet  # noqa: E402

CELLS_PER_PIXEL = 36 / (256 * 256)  # a few dozen per 256x256 image
SPECKS_PER_PIXEL = 40 / (256 * 256)
STREAKS_PER_PIXEL = 2.5 / (256 * 256)


# ----------------------------------------------------------------------------- images

def _blur(img, sigma):
    """Gaussian blur of a (C, H, W) float32 array, reflect padding."""
    if sigma <= 0:
        return img
    r = max(1, int(math.ceil(3 * sigma)))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k = torch.from_numpy((k / k.sum()).astype(np.float32))
    t = torch.from_numpy(np.ascontiguousarray(img))[:, None]  # C,1,H,W
    t = F.pad(t, (r, r, r, r), mode="reflect")
    t = F.conv2d(t, k.view(1, 1, 1, -1))
    t = F.conv2d(t, k.view(1, 1, -1, 1))
    return t[:, 0].numpy()


def _smooth_noise(rng, h, w, scale):
    """Zero-mean, unit-ish smooth random field with features about `scale` pixels wide."""
    gh, gw = h // scale + 3, w // scale + 3
    g = torch.from_numpy(rng.standard_normal((1, 1, gh, gw)).astype(np.float32))
    up = F.interpolate(g, size=(gh * scale, gw * scale), mode="bicubic", align_corners=False)
    oy, ox = rng.integers(0, scale, size=2)
    return up[0, 0, oy:oy + h, ox:ox + w].numpy()


def render(rng, h, w):
    """One synthetic image: (uint8 H x W x 3 RGB, bool H x W mask)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)

    # uneven illumination: a broad off-centre hot spot and a gentle linear falloff
    cx, cy = rng.uniform(-0.2, 1.2) * w, rng.uniform(-0.2, 1.2) * h
    s = rng.uniform(0.5, 1.0) * max(h, w)
    illum = 0.55 + 0.45 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * s * s))
    gx, gy = rng.uniform(-0.15, 0.15, size=2)
    illum *= 1 + gx * (xx / w - 0.5) + gy * (yy / h - 0.5)

    # background autofluorescence: dark, blotchy
    bg = rng.uniform(0.04, 0.10) * (1 + 0.35 * _smooth_noise(rng, h, w, 24))
    bg = np.clip(bg, 0, None)

    # cells
    texture = _smooth_noise(rng, h, w, 3)  # fine granular texture shared by all cells
    cells = np.zeros((h, w), np.float32)
    mask = np.zeros((h, w), bool)
    tint = np.array([rng.uniform(0.15, 0.35), 1.0, rng.uniform(0.25, 0.5)], np.float32)
    placed = []
    n_cells = rng.poisson(CELLS_PER_PIXEL * h * w)
    for _ in range(n_cells):
        a = rng.uniform(6.0, 14.0)
        b = a * rng.uniform(0.55, 1.0)
        theta = rng.uniform(0, math.pi)
        if placed and rng.random() < 0.3:  # touching a neighbour
            px, py, pa = placed[rng.integers(len(placed))]
            phi = rng.uniform(0, 2 * math.pi)
            dist = (pa + b) * rng.uniform(0.8, 1.0)
            x0, y0 = px + dist * math.cos(phi), py + dist * math.sin(phi)
        else:
            x0, y0 = rng.uniform(-4, w + 4), rng.uniform(-4, h + 4)
        placed.append((x0, y0, (a + b) / 2))
        r = int(math.ceil(a + 4))
        xa, xb = max(0, int(x0) - r), min(w, int(x0) + r + 1)
        ya, yb = max(0, int(y0) - r), min(h, int(y0) + r + 1)
        if xa >= xb or ya >= yb:
            continue
        dx, dy = xx[ya:yb, xa:xb] - x0, yy[ya:yb, xa:xb] - y0
        c, sn = math.cos(theta), math.sin(theta)
        u, v = (dx * c + dy * sn) / a, (-dx * sn + dy * c) / b
        rho = np.sqrt(u * u + v * v)
        edge = (1 - rho) * math.sqrt(a * b)  # ~ signed distance to the outline, pixels
        soft = rng.uniform(0.5, 1.2)
        prof = 1 / (1 + np.exp(-np.clip(edge / soft, -30, 30)))
        shade = 0.7 + 0.3 * np.clip(1 - rho * rho, 0, 1)  # brighter middle (a dome)
        shade *= 1 + rng.uniform(0.1, 0.3) * texture[ya:yb, xa:xb]
        if rng.random() < 0.5:  # a dimmer nucleus
            nu, nv = rng.uniform(-0.3, 0.3, size=2)
            shade *= 1 - rng.uniform(0.2, 0.45) * np.exp(-((u - nu) ** 2 + (v - nv) ** 2) / (2 * 0.3 ** 2))
        val = rng.uniform(0.35, 0.9) * prof * shade
        np.maximum(cells[ya:yb, xa:xb], val, out=cells[ya:yb, xa:xb])
        mask[ya:yb, xa:xb] |= rho < 1

    img = (bg + cells)[None] * tint[:, None, None]
    img[0] += bg * 0.4  # the background is a little less green than the cells
    img[2] += bg * 0.3

    # distractors: small bright specks (debris, dye aggregates) ...
    for _ in range(rng.poisson(SPECKS_PER_PIXEL * h * w)):
        x0, y0 = rng.uniform(0, w), rng.uniform(0, h)
        sig = rng.uniform(0.6, 1.6)
        r = int(math.ceil(4 * sig))
        xa, xb = max(0, int(x0) - r), min(w, int(x0) + r + 1)
        ya, yb = max(0, int(y0) - r), min(h, int(y0) + r + 1)
        g = np.exp(-((xx[ya:yb, xa:xb] - x0) ** 2 + (yy[ya:yb, xa:xb] - y0) ** 2) / (2 * sig * sig))
        color = np.array([1, 1, 1], np.float32) if rng.random() < 0.5 else tint
        img[:, ya:yb, xa:xb] += rng.uniform(0.3, 0.9) * color[:, None, None] * g
    # ... and faint streaks (scratches, fibres)
    for _ in range(rng.poisson(STREAKS_PER_PIXEL * h * w)):
        x0, y0 = rng.uniform(0, w), rng.uniform(0, h)
        phi, length = rng.uniform(0, math.pi), rng.uniform(0.3, 0.8) * max(h, w)
        ex, ey = math.cos(phi), math.sin(phi)
        t = np.clip((xx - x0) * ex + (yy - y0) * ey, -length / 2, length / 2)
        d2 = (xx - x0 - t * ex) ** 2 + (yy - y0 - t * ey) ** 2
        sig = rng.uniform(0.7, 1.5)
        img += rng.uniform(0.06, 0.18) * np.array([0.7, 0.9, 1.0], np.float32)[:, None, None] \
            * np.exp(-d2 / (2 * sig * sig))

    img *= illum[None]
    img = _blur(img.astype(np.float32), rng.uniform(0.6, 1.4))
    noise = rng.uniform(0.012, 0.035)
    img += rng.standard_normal(img.shape).astype(np.float32) * (noise + 0.05 * np.sqrt(np.clip(img, 0, None)))
    img = np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(img.transpose(1, 2, 0)), mask


def batch(rng, n, size):
    imgs, masks = zip(*(render(rng, size, size) for _ in range(n)))
    return np.stack(imgs), np.stack(masks)


def to_input(imgs_u8, mean, std):
    """uint8 N,H,W,3 -> normalized float32 N,3,H,W: (x / 255 - mean) / std, as wunet does."""
    x = torch.from_numpy(imgs_u8).permute(0, 3, 1, 2).float() / 255.0
    return (x - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)


# ----------------------------------------------------------------------------- PNG

def write_png(path, arr):
    """8-bit PNG from an H x W (gray) or H x W x 3 (RGB) uint8 array."""
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    h, w = arr.shape[:2]
    color = 0 if arr.ndim == 2 else 2
    raw = b"".join(b"\x00" + arr[y].tobytes() for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, color, 0, 0, 0)))
        f.write(chunk(b"IDAT", zlib.compress(raw, 9)))
        f.write(chunk(b"IEND", b""))


def read_png(path):
    """8-bit, non-interlaced gray / RGB / RGBA PNG -> uint8 array (H x W or H x W x C)."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, b""
    while pos < len(data):
        (n,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and interlace == 0 and color in (0, 2, 6)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    c = {0: 1, 2: 3, 6: 4}[color]
    raw = zlib.decompress(idat)
    out = np.zeros((h, w * c), np.int32)
    prev = np.zeros(w * c, np.int32)
    stride = w * c + 1
    for y in range(h):
        ft, line = raw[y * stride], np.frombuffer(raw, np.uint8, w * c, y * stride + 1).astype(np.int32)
        cur = np.zeros(w * c, np.int32)
        if ft == 0:
            out[y], prev = line, line
            continue
        for i in range(w * c):
            a = cur[i - c] if i >= c else 0
            b = prev[i]
            cc = prev[i - c] if i >= c else 0
            if ft == 0:
                p = 0
            elif ft == 1:
                p = a
            elif ft == 2:
                p = b
            elif ft == 3:
                p = (a + b) // 2
            else:
                pa, pb, pc = abs(b - cc), abs(a - cc), abs(a + b - 2 * cc)
                p = a if pa <= pb and pa <= pc else b if pb <= pc else cc
            cur[i] = (line[i] + p) & 255
        out[y], prev = cur, cur
    out = out.astype(np.uint8).reshape(h, w, c)
    return out[:, :, 0] if c == 1 else out


# ----------------------------------------------------------------------------- training

def dice(pred, target):
    pred, target = pred.astype(bool), target.astype(bool)
    inter = np.logical_and(pred, target).sum()
    return 2.0 * inter / max(1, pred.sum() + target.sum())


@torch.no_grad()
def evaluate(model, x, y):
    model.eval()
    preds = torch.cat([model(x[i:i + 16]) for i in range(0, len(x), 16)])[:, 0] > 0
    model.train()
    return dice(preds.numpy(), y.numpy())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--features", default="16,32,64,128")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--size", type=int, default=128, help="training image size")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--val-images", type=int, default=64)
    p.add_argument("--val-every", type=int, default=100)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out-dir", default=os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "assets")))
    p.add_argument("--pred", default="/tmp/cells_pred_torch.png", help="PyTorch's mask for cells.png")
    p.add_argument("--samples-only", action="store_true", help="write the sample images and stop")
    a = p.parse_args(argv)

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    train_ss, val_ss, stats_ss, sample_ss = np.random.SeedSequence(a.seed).spawn(4)
    os.makedirs(a.out_dir, exist_ok=True)
    feats = [int(f) for f in a.features.split(",")]

    # the held-out sample, from its own random stream
    sample_img, sample_mask = render(np.random.default_rng(sample_ss), 256, 256)
    cells_png = os.path.join(a.out_dir, "cells.png")
    write_png(cells_png, sample_img)
    write_png(os.path.join(a.out_dir, "cells_mask.png"), sample_mask.astype(np.uint8) * 255)
    print(f"cells.png: {sample_mask.mean() * 100:.1f}% cell pixels")
    if a.samples_only:
        for i in range(4):
            im, m = render(np.random.default_rng(train_ss.spawn(1)[0]), 256, 256)
            write_png(f"/tmp/demo_sample{i}.png", im)
            write_png(f"/tmp/demo_sample{i}_mask.png", m.astype(np.uint8) * 255)
        return

    # input normalization: per-channel statistics of the training distribution, rounded
    # (the rounded values are both used in training and stored in the file)
    s_imgs, _ = batch(np.random.default_rng(stats_ss), 64, a.size)
    s = s_imgs.reshape(-1, 3).astype(np.float64) / 255
    mean = [round(float(v), 4) for v in s.mean(0)]
    std = [round(float(v), 4) for v in s.std(0)]
    print(f"input_mean {mean} input_std {std}")

    v_imgs, v_masks = batch(np.random.default_rng(val_ss), a.val_images, a.size)
    vx, vy = to_input(v_imgs, mean, std), torch.from_numpy(v_masks)
    print(f"validation: {a.val_images} images {a.size}x{a.size}, {v_masks.mean() * 100:.1f}% cell pixels")

    model = UNet(3, 1, feats)
    n_params = sum(t.numel() for t in model.parameters())
    print(f"UNet(3, 1, {feats}): {n_params} parameters")
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=a.lr, total_steps=a.steps, pct_start=0.1)
    train_rng = np.random.default_rng(train_ss)
    t0, best = time.time(), 0.0
    model.train()
    for step in range(1, a.steps + 1):
        imgs, masks = batch(train_rng, a.batch, a.size)
        x, y = to_input(imgs, mean, std), torch.from_numpy(masks).float()[:, None]
        logits = model(x)
        prob = torch.sigmoid(logits)
        soft_dice = (2 * (prob * y).sum() + 1) / (prob.sum() + y.sum() + 1)
        loss = F.binary_cross_entropy_with_logits(logits, y) + (1 - soft_dice)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % a.val_every == 0 or step == a.steps:
            d = evaluate(model, vx, vy)
            best = max(best, d)
            print(f"step {step:5d}  loss {loss.item():.4f}  val Dice {d:.4f}  "
                  f"lr {sched.get_last_lr()[0]:.2e}  {time.time() - t0:.0f}s", flush=True)
    val_dice = evaluate(model, vx, vy)

    st_path = os.path.join(a.out_dir, "demo_unet.safetensors")
    save_safetensors(model.state_dict(), st_path, "f32", make_metadata(mean, std))
    print(f"wrote {st_path} ({os.path.getsize(st_path)} bytes); final validation Dice {val_dice:.4f}")

    # PyTorch's prediction on the sample, from the files exactly as wunet reads them
    from safetensors.torch import load_file
    ref = build_model(load_file(st_path))
    img = read_png(cells_png)
    with torch.no_grad():
        logits = ref(to_input(img[None], mean, std))
    pred = (logits[0, 0] > 0).numpy()
    write_png(a.pred, pred.astype(np.uint8) * 255)
    np.save(os.path.splitext(a.pred)[0] + "_logits.npy", logits.numpy().astype(np.float32))
    truth = read_png(os.path.join(a.out_dir, "cells_mask.png")) > 127
    print(f"cells.png: Dice {dice(pred, truth):.4f} (PyTorch, sigmoid > 0.5) -> {a.pred}")
    print(f"total {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
