#!/usr/bin/env python3
"""Export a PyTorch reference U-Net to safetensors for wunet, and make test fixtures.

Offline tool (needs torch, numpy, safetensors); CI never runs it.

  # a trained model, keys unchanged
  python tools/export_torch.py model.pth -o model.safetensors [--fp16|--bf16] \
      [--input-mean 0.5,0.5,0.5 --input-std 0.25,0.25,0.25] [--bn-eps 1e-5]

  # the same, plus PyTorch's output on a random input (a fixture triple in a folder)
  python tools/export_torch.py model.pth --fixture NAME --shape N,C,H,W [--seed S] -o tests/fixtures/

  # a random model (how the committed fixtures are made)
  python tools/export_torch.py --random --features 4,8 --in 3 --out 2 \
      --fixture NAME --shape 1,3,32,32 [--seed S] -o tests/fixtures/

Output file format: the state_dict's tensors under their PyTorch names, made contiguous; float
tensors as float32 (or float16/bfloat16 with --fp16/--bf16), `num_batches_tracked` kept as
int64. Metadata (string -> string), written only when given: `input_mean`, `input_std`
(per-channel, comma-separated decimals like "0.5,0.5,0.5"), `bn_eps` (a decimal like "0.001").
A fixture NAME is NAME.safetensors, NAME_input.npy (float32 NCHW, standard normal from the
seed) and NAME_output.npy (float32 NCHW logits of the model in eval() mode, computed in float32
from exactly the weights stored in the file, i.e. after any f16/bf16 rounding).
"""
import argparse
import os
import sys
from collections import OrderedDict

import numpy as np
import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from unet_ref import UNet, features_of, randomize_bn  # noqa: E402

DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}


def fmt_float(x):
    """A plain decimal, shortest round-trip for float32 (no exponent): 1e-3 -> "0.001"."""
    return np.format_float_positional(np.float32(x), trim="-", unique=True)


def fmt_floats(xs):
    return ",".join(fmt_float(x) for x in xs)


def parse_floats(s):
    return [float(v) for v in s.replace("[", "").replace("]", "").split(",") if v.strip()]


def parse_ints(s):
    return [int(v) for v in s.split(",") if v.strip()]


def make_metadata(input_mean=None, input_std=None, bn_eps=None):
    meta = {}
    if input_mean is not None:
        meta["input_mean"] = fmt_floats(input_mean)
    if input_std is not None:
        meta["input_std"] = fmt_floats(input_std)
    if bn_eps is not None:
        meta["bn_eps"] = fmt_float(bn_eps)
    return meta


def cast_state_dict(sd, dtype="f32"):
    """Floating tensors to `dtype` (contiguous, detached, on the CPU); others unchanged."""
    out = OrderedDict()
    for k, v in sd.items():
        v = v.detach().cpu()
        if v.is_floating_point():
            v = v.to(DTYPES[dtype])
        out[k] = v.contiguous()
    return out


def save_safetensors(sd, path, dtype="f32", metadata=None):
    """Write a reference state_dict as wunet reads it. Returns the tensors written."""
    tensors = cast_state_dict(sd, dtype)
    save_file(dict(tensors), path, metadata=metadata or None)
    os.chmod(path, 0o644)  # safetensors creates 0600 files
    return tensors


def _lenient_pickle():
    """pickle, except that a pickled whole model whose `UNet` / `DoubleConv` class cannot be
    imported here (the user's own module) is rebuilt from tools/unet_ref.py."""
    import pickle
    import types

    import unet_ref

    class Unpickler(pickle.Unpickler):
        def find_class(self, module, name):
            try:
                return super().find_class(module, name)
            except (ImportError, AttributeError):
                if name in ("UNet", "DoubleConv"):
                    return getattr(unet_ref, name)
                raise

    mod = types.SimpleNamespace(**{k: getattr(pickle, k) for k in dir(pickle) if not k.startswith("__")})
    mod.Unpickler = Unpickler
    mod.__name__ = "pickle"
    mod.load = lambda f, **kw: Unpickler(f, **kw).load()
    return mod


def load_state_dict(path):
    """A state_dict from a .pth: a plain state_dict, a checkpoint dict holding one under
    'state_dict' or 'model', or a pickled whole nn.Module."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a pickled nn.Module is refused by weights_only
        print(f"note: weights_only load failed ({type(e).__name__}); loading the full pickle "
              "(only do this with files you trust)", file=sys.stderr)
        obj = torch.load(path, map_location="cpu", weights_only=False,
                         pickle_module=_lenient_pickle())
    if isinstance(obj, torch.nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):
            if key in obj and not isinstance(obj[key], torch.Tensor):
                inner = obj[key]
                obj = inner.state_dict() if isinstance(inner, torch.nn.Module) else inner
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise SystemExit(f"{path}: no state_dict of tensors found")
    sd = OrderedDict(obj)
    # nn.DataParallel / DistributedDataParallel wrap every key in "module."
    if sd and all(k.startswith("module.") for k in sd):
        sd = OrderedDict((k[len("module."):], v) for k, v in sd.items())
    return sd


def build_model(sd, bn_eps=1e-5):
    """The reference model holding `sd` (strict: the keys and shapes must be the reference's)."""
    if "downs.0.conv1.weight" not in sd or "final_conv.weight" not in sd:
        raise SystemExit("not a reference U-Net state_dict (no downs.0.conv1.weight / final_conv.weight)")
    cin, cout, feats = features_of(sd)
    model = UNet(cin, cout, feats, bn_eps=bn_eps)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in sd.items()},
                          strict=True)
    return model.eval()


@torch.no_grad()
def variance_preserving_init(model):
    """He-normal weights (gain for ReLU) on every convolution, so that activations keep their
    scale through the depth and every level (bottleneck included) visibly moves the output.
    PyTorch's default init shrinks them ~3x per conv: a 5-level random model's output would be
    its final bias to 1e-7, and a fixture made from it would test nothing deep."""
    for m in model.modules():
        if isinstance(m, torch.nn.ConvTranspose2d):  # weight [in, out, 2, 2]: fan-in = in
            m.weight.normal_(0.0, (2.0 / m.weight.shape[0]) ** 0.5)
            m.bias.normal_(0.0, 0.1)
        elif isinstance(m, torch.nn.Conv2d):
            fan_in = m.weight[0].numel()
            gain = 1.0 if m.kernel_size == (1, 1) else 2.0  # the 1x1 head has no ReLU after it
            m.weight.normal_(0.0, (gain / fan_in) ** 0.5)
            if m.bias is not None:
                m.bias.normal_(0.0, 0.1)


def random_model(cin, cout, feats, seed, bn_eps=1e-5):
    """torch.manual_seed(seed), He-normal convolutions, then randomize_bn(model, seed)."""
    torch.manual_seed(seed)
    model = UNet(cin, cout, feats, bn_eps=bn_eps)
    variance_preserving_init(model)
    randomize_bn(model, seed)
    return model.eval()


def write_fixture(model, name, shape, seed, outdir, dtype="f32", metadata=None):
    """NAME.safetensors, NAME_input.npy, NAME_output.npy in `outdir`."""
    os.makedirs(outdir, exist_ok=True)
    st_path = os.path.join(outdir, f"{name}.safetensors")
    stored = save_safetensors(model.state_dict(), st_path, dtype, metadata)
    # Run exactly what was stored: rounded to f16/bf16 and widened back to f32.
    eps = model.downs[0].bn1.eps
    ref = build_model(stored, bn_eps=eps)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=gen, dtype=torch.float32)
    with torch.no_grad():
        y = ref(x)
    np.save(os.path.join(outdir, f"{name}_input.npy"), x.numpy().astype(np.float32))
    np.save(os.path.join(outdir, f"{name}_output.npy"), y.numpy().astype(np.float32))
    print(f"{name}: features {features_of(stored)[2]}, {dtype}, input {list(x.shape)} -> "
          f"output {list(y.shape)}, max|y| {y.abs().max().item():.4g}, files in {outdir}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", nargs="?", help="a .pth state_dict / checkpoint / pickled model")
    p.add_argument("-o", "--output", required=True,
                   help="output .safetensors file, or the output folder with --fixture")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--fp16", action="store_true", help="store float tensors as float16")
    g.add_argument("--bf16", action="store_true", help="store float tensors as bfloat16")
    p.add_argument("--input-mean", type=parse_floats, help="per-channel mean, e.g. 0.5,0.5,0.5")
    p.add_argument("--input-std", type=parse_floats, help="per-channel std, e.g. 0.25,0.25,0.25")
    p.add_argument("--bn-eps", type=float, help="BatchNorm epsilon (metadata; default 1e-5)")
    p.add_argument("--fixture", metavar="NAME", help="also write NAME_input.npy / NAME_output.npy")
    p.add_argument("--shape", type=parse_ints, help="fixture input shape N,C,H,W")
    p.add_argument("--seed", type=int, default=0, help="seed of the input (and of --random)")
    p.add_argument("--random", action="store_true", help="a randomly initialized model")
    p.add_argument("--features", type=parse_ints, default=[4, 8], help="with --random, e.g. 4,8")
    p.add_argument("--in", dest="in_channels", type=int, default=3, help="with --random")
    p.add_argument("--out", dest="out_channels", type=int, default=1, help="with --random")
    a = p.parse_args(argv)

    torch.set_num_threads(min(2, torch.get_num_threads()))
    dtype = "f16" if a.fp16 else "bf16" if a.bf16 else "f32"
    bn_eps = a.bn_eps if a.bn_eps is not None else 1e-5
    if bool(a.random) == bool(a.model):
        p.error("give a model file or --random (not both)")
    if a.fixture and (not a.shape or len(a.shape) != 4):
        p.error("--fixture needs --shape N,C,H,W")
    if a.random and not a.fixture:
        p.error("--random needs --fixture")

    if a.random:
        model = random_model(a.in_channels, a.out_channels, a.features, a.seed, bn_eps)
    else:
        sd = load_state_dict(a.model)
        model = build_model(sd, bn_eps)  # checks that it is the reference architecture
    cin = model.downs[0].conv1.in_channels
    for key, v in (("input-mean", a.input_mean), ("input-std", a.input_std)):
        if v is not None and len(v) not in (1, cin):
            p.error(f"--{key}: {len(v)} values for a model with {cin} input channels")
    if a.input_std is not None and any(s == 0 for s in a.input_std):
        p.error("--input-std: a standard deviation of 0")
    # one value means the same for every channel; the file always gets one per channel
    mean = a.input_mean * cin if a.input_mean is not None and len(a.input_mean) == 1 else a.input_mean
    std = a.input_std * cin if a.input_std is not None and len(a.input_std) == 1 else a.input_std
    meta = make_metadata(mean, std, a.bn_eps)

    if a.fixture:
        if a.shape[1] != cin:
            p.error(f"--shape has {a.shape[1]} channels, the model takes {cin}")
        write_fixture(model, a.fixture, a.shape, a.seed, a.output, dtype, meta)
    else:
        # the file's own tensors (all keys, num_batches_tracked included), unchanged
        save_safetensors(sd, a.output, dtype, meta)
        print(f"wrote {a.output}: {len(sd)} tensors, features {features_of(sd)[2]}, {dtype}, "
              f"metadata {meta or '{}'}")


if __name__ == "__main__":
    main()
