#!/usr/bin/env python3
"""Make the ONNX import test fixtures under tests/fixtures/onnx/.

Offline developer tool; CI never runs it. Needs torch, onnx, onnxruntime, onnxscript, numpy,
segmentation_models_pytorch, monai and dynamic_network_architectures (no network access and no
pretrained weights: every model is random, from a fixed seed).

  python3 tools/make_onnx_fixtures.py            # all families
  python3 tools/make_onnx_fixtures.py -o DIR     # elsewhere (default tests/fixtures/onnx)
  python3 tools/make_onnx_fixtures.py --only reference,smp_resnet18_scse

For each small U-Net family it writes a folder DIR/<name>/ with

  input.npy          float32 NCHW, batch 2, uniform in [0, 1) from the seed
  output.npy         PyTorch's float32 output (CPU, eval mode) on that input
  torchscript.onnx   torch.onnx.export(dynamo=False, opset 17), dynamic N/H/W axes where
                     possible, weights embedded
  dynamo.onnx        torch.onnx.export(dynamo=True, opset 18), dynamic N/H/W where possible,
  dynamo.onnx.data   weights as external data beside it (tensors under 256 bytes stay inline)

The models are random: torch.manual_seed(seed), He-normal convolution weights (so that deep
levels visibly move the output), small random biases, and random BatchNorm running statistics
and affine parameters / InstanceNorm affine parameters / PReLU slopes, so that a wrong eps or a
folding bug shows in the output.

It also writes DIR/manifest.json: one entry per model with its input/output shapes, whether
each export has symbolic N/H/W, float32-vs-float64 relative error of PyTorch itself, the relative
error of onnxruntime (CPU) against PyTorch for each export (max|ort - torch| / max|torch|), and
the distinct ONNX op types of each export. Extra keys: "ort_rel_other_size" (ORT vs PyTorch at
two other input sizes, for exports with symbolic axes), "shape_specialised" (exports whose axes
are symbolic but which are only right at some sizes, because a Python shape test was traced at
the export size), "details" (opset, Resize/Pad/Softmax attributes, which ops only do integer
shape arithmetic, float inputs that are not 4-D), "notes" (fallbacks taken). Exports that fail
are listed under "failed" and skipped; one failing family does not stop the others.

Note: both exporters fold BatchNormalization into the preceding Conv (the dynamo path also into
ConvTranspose), so the randomised BatchNorm statistics reach the ONNX files mostly as folded
weights; only attention_unet/torchscript.onnx keeps a BatchNormalization node.
"""
import argparse
import copy
import importlib.util
import json
import math
import os
import re
import shutil
import sys
import traceback
import warnings

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REFERENCE_PATH = "/work/shared/reference/seed_unet.py"

warnings.filterwarnings("ignore")


# --------------------------------------------------------------------------------------------
# Randomisation helpers
# --------------------------------------------------------------------------------------------

def randomize(model, seed):
    """He-normal convs, small random biases, non-trivial norm statistics / affine params."""
    g = torch.Generator().manual_seed(seed + 1000)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
                # max(1, .): smp's SCSE on 8 channels has a zero-width 1x1 conv (8 // 16 == 0),
                # whose bias PyTorch would leave uninitialised.
                fan_in = max(1, m.weight.shape[1] * math.prod(m.weight.shape[2:]))
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * math.sqrt(2.0 / fan_in))
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
            elif isinstance(m, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
                # weight (in, out/groups, k...): each output sees in * prod(k) / prod(stride) taps
                k = math.prod(m.weight.shape[2:])
                s = math.prod(m.stride)
                fan_in = max(1.0, m.weight.shape[0] * k / s)
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * math.sqrt(2.0 / fan_in))
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
            elif isinstance(m, nn.modules.batchnorm._NormBase):  # BatchNorm*, InstanceNorm*
                n = m.num_features
                if m.affine:
                    m.weight.copy_(torch.rand(n, generator=g) * 0.5 + 0.75)
                    m.bias.copy_(torch.randn(n, generator=g) * 0.1)
                if m.track_running_stats and m.running_mean is not None:
                    m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
                    m.running_var.copy_(torch.rand(n, generator=g) * 0.5 + 0.75)
            elif isinstance(m, nn.GroupNorm) and m.affine:
                n = m.num_channels
                m.weight.copy_(torch.rand(n, generator=g) * 0.5 + 0.75)
                m.bias.copy_(torch.randn(n, generator=g) * 0.1)
            elif isinstance(m, nn.PReLU):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) * 0.3 + 0.1)
            elif isinstance(m, nn.Linear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * math.sqrt(2.0 / m.weight.shape[1]))
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
    return model


# --------------------------------------------------------------------------------------------
# Model families
# --------------------------------------------------------------------------------------------

def load_reference_module():
    spec = importlib.util.spec_from_file_location("seed_unet", REFERENCE_PATH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def make_reference():
    ref = load_reference_module()
    return ref.UNet(in_channels=3, out_channels=1, features=[4, 8, 16])


# milesial/Pytorch-UNet, re-written from its description ------------------------------------

class MDoubleConv(nn.Module):
    """(3x3 conv without bias -> BN -> ReLU) twice, with an optional middle width."""

    def __init__(self, cin, cout, mid=None):
        super().__init__()
        mid = mid or cout
        self.double_conv = nn.Sequential(
            nn.Conv2d(cin, mid, 3, padding=1, bias=False),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )

    def forward(self, x):
        return self.double_conv(x)


class MDown(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.maxpool_conv = nn.Sequential(nn.MaxPool2d(2), MDoubleConv(cin, cout))

    def forward(self, x):
        return self.maxpool_conv(x)


class MUp(nn.Module):
    def __init__(self, cin, cout, bilinear):
        super().__init__()
        if bilinear:
            self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
            self.conv = MDoubleConv(cin, cout, cin // 2)
        else:
            self.up = nn.ConvTranspose2d(cin, cin // 2, kernel_size=2, stride=2)
            self.conv = MDoubleConv(cin, cout)

    def forward(self, x1, x2):
        x1 = self.up(x1)
        diff_y = x2.size()[2] - x1.size()[2]
        diff_x = x2.size()[3] - x1.size()[3]
        x1 = F.pad(x1, [diff_x // 2, diff_x - diff_x // 2, diff_y // 2, diff_y - diff_y // 2])
        return self.conv(torch.cat([x2, x1], dim=1))


class MilesialUNet(nn.Module):
    def __init__(self, n_channels=3, n_classes=2, bilinear=False, base=4):
        super().__init__()
        f = 2 if bilinear else 1
        b = base
        self.inc = MDoubleConv(n_channels, b)
        self.down1 = MDown(b, 2 * b)
        self.down2 = MDown(2 * b, 4 * b)
        self.down3 = MDown(4 * b, 8 * b)
        self.down4 = MDown(8 * b, 16 * b // f)
        self.up1 = MUp(16 * b, 8 * b // f, bilinear)
        self.up2 = MUp(8 * b, 4 * b // f, bilinear)
        self.up3 = MUp(4 * b, 2 * b // f, bilinear)
        self.up4 = MUp(2 * b, b, bilinear)
        self.outc = nn.Conv2d(b, n_classes, kernel_size=1)

    def forward(self, x):
        x1 = self.inc(x)
        x2 = self.down1(x1)
        x3 = self.down2(x2)
        x4 = self.down3(x3)
        x5 = self.down4(x4)
        x = self.up1(x5, x4)
        x = self.up2(x, x3)
        x = self.up3(x, x2)
        x = self.up4(x, x1)
        return self.outc(x)


# Small U-Net with CBAM-style spatial attention --------------------------------------------

class BDoubleConv(nn.Module):
    """(3x3 conv with bias -> BN -> ReLU) twice."""

    def __init__(self, cin, cout):
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1, bias=True),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=True),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )

    def forward(self, x):
        return self.block(x)


class SpatialAttention(nn.Module):
    def __init__(self, kernel_size=7):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=True)

    def forward(self, x):
        avg = torch.mean(x, dim=1, keepdim=True)
        mx = torch.amax(x, dim=1, keepdim=True)
        a = torch.sigmoid(self.conv(torch.cat([avg, mx], dim=1)))
        return x * a


class SpatialAttentionUNet(nn.Module):
    def __init__(self, in_channels=3, out_channels=1, widths=(4, 8, 16)):
        super().__init__()
        self.downs = nn.ModuleList()
        c = in_channels
        for w in widths:
            self.downs.append(BDoubleConv(c, w))
            c = w
        self.pool = nn.MaxPool2d(2, 2)
        self.bottleneck = BDoubleConv(widths[-1], widths[-1] * 2)
        self.bottleneck_att = SpatialAttention()
        self.ups = nn.ModuleList()
        self.dec = nn.ModuleList()
        self.dec_att = nn.ModuleList()
        for w in reversed(widths):
            self.ups.append(nn.ConvTranspose2d(w * 2, w, 2, stride=2))
            self.dec.append(BDoubleConv(w * 2, w))
            self.dec_att.append(SpatialAttention())
        self.head = nn.Conv2d(widths[0], out_channels, 1)

    def forward(self, x):
        skips = []
        for d in self.downs:
            x = d(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck_att(self.bottleneck(x))
        for up, dec, att, skip in zip(self.ups, self.dec, self.dec_att, reversed(skips)):
            # Always resized to the skip's size (an identity when they already match), so that
            # the exports stay correct at every input size; a shape test here would be baked
            # into the traced graph at the export size.
            x = F.interpolate(up(x), size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = att(dec(torch.cat([x, skip], dim=1)))
        return self.head(x)


# Library models -----------------------------------------------------------------------------

def make_smp(encoder):
    # decoder_channels (32, 16, 8) would not run: SCSE squeezes C -> C // 16 channels, and
    # 8 // 16 == 0 gives a zero-width 1x1 conv that PyTorch rejects; so the last block has 16.
    import segmentation_models_pytorch as smp
    m = smp.Unet(encoder_name=encoder, encoder_weights=None, encoder_depth=3,
                 decoder_channels=(32, 16, 16), decoder_attention_type="scse",
                 in_channels=3, classes=2)
    # With depth 3 the encoder never runs layer3/layer4; drop them so "params" counts what runs.
    del m.encoder.layer3, m.encoder.layer4
    return m


def make_monai_basicunet():
    from monai.networks.nets import BasicUNet
    return BasicUNet(spatial_dims=2, in_channels=1, out_channels=2, features=(4, 4, 8, 16, 32, 4))


def make_monai_unet_res():
    from monai.networks.nets import UNet
    return UNet(spatial_dims=2, in_channels=1, out_channels=2, channels=(4, 8, 16),
                strides=(2, 2), num_res_units=2)


def make_nnunet_plain():
    from dynamic_network_architectures.architectures.unet import PlainConvUNet
    return PlainConvUNet(input_channels=1, n_stages=4, features_per_stage=(4, 8, 16, 32),
                         conv_op=nn.Conv2d, kernel_sizes=3, strides=(1, 2, 2, 2),
                         n_conv_per_stage=2, num_classes=3, n_conv_per_stage_decoder=2,
                         conv_bias=True, norm_op=nn.InstanceNorm2d,
                         norm_op_kwargs={"eps": 1e-5, "affine": True}, nonlin=nn.LeakyReLU,
                         nonlin_kwargs={"inplace": True}, deep_supervision=False)


def make_attention_unet():
    from monai.networks.nets import AttentionUnet
    return AttentionUnet(spatial_dims=2, in_channels=1, out_channels=1, channels=(4, 8, 16),
                         strides=(2, 2))


# name, family, builder, in_channels, candidate (H, W) sizes (first that runs is used), seed
FAMILIES = [
    ("reference", "reference", make_reference, 3, [(37, 45)], 1),
    ("milesial_bilinear", "milesial", lambda: MilesialUNet(3, 2, bilinear=True), 3,
     [(37, 45)], 2),
    ("milesial_transposed", "milesial", lambda: MilesialUNet(3, 2, bilinear=False), 3,
     [(37, 45)], 3),
    # smp >= 0.5's Unet resizes each decoder level to its skip's size, so odd sizes work.
    ("smp_resnet18_scse", "smp", lambda: make_smp("resnet18"), 3, [(37, 45), (40, 56)], 4),
    ("smp_resnet34_scse", "smp", lambda: make_smp("resnet34"), 3, [(37, 45), (40, 56)], 5),
    ("monai_basicunet", "monai", make_monai_basicunet, 1, [(37, 45), (48, 64)], 6),
    ("monai_unet_res", "monai", make_monai_unet_res, 1, [(37, 45), (36, 44)], 7),
    ("nnunet_plain", "nnunet", make_nnunet_plain, 1, [(37, 45), (40, 48)], 8),
    ("attention_unet", "monai", make_attention_unet, 1, [(37, 45), (36, 44)], 9),
    ("spatial_attention_unet", "custom", lambda: SpatialAttentionUNet(3, 1), 3, [(37, 45)], 10),
]


# --------------------------------------------------------------------------------------------
# Export and checks
# --------------------------------------------------------------------------------------------

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def clean(msg):
    """One tidy line of an exception message (no terminal colours)."""
    return " ".join(ANSI.sub("", msg).split())


def rel(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def export_torchscript(model, x, path):
    """Returns (dynamic, note)."""
    kw = dict(dynamo=False, opset_version=17, input_names=["input"], output_names=["output"])
    try:
        torch.onnx.export(model, x, path, **kw,
                          dynamic_axes={"input": {0: "n", 2: "h", 3: "w"},
                                        "output": {0: "n", 2: "h", 3: "w"}})
        return True, None
    except Exception as e:  # noqa: BLE001
        note = f"dynamic axes failed: {type(e).__name__}: {clean(str(e))[:300]}"
        print(f"    torchscript: {note}; retrying with fixed shapes")
    torch.onnx.export(model, x, path, **kw)
    return False, note


def export_dynamo(model, x, path):
    """Returns (dynamic, note, opset). Saves path + path.data (external weights)."""
    from torch.export import Dim
    notes = []
    dims = {0: Dim("n", min=1, max=64), 2: Dim("h", min=8, max=4096), 3: Dim("w", min=8, max=4096)}
    attempts = [
        ("dynamic", dict(dynamic_shapes=({**dims},))),
        ("dynamic_auto", dict(dynamic_shapes=({0: Dim.AUTO, 2: Dim.AUTO, 3: Dim.AUTO},))),
        ("static", {}),
    ]
    for opset in (18, None):
        for label, extra in attempts:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    prog = torch.onnx.export(model, (x,), dynamo=True, opset_version=opset,
                                             input_names=["input"], output_names=["output"],
                                             verbose=False, **extra)
                prog.save(path, external_data=True)
                return label, notes, opset
            except Exception as e:  # noqa: BLE001
                msg = f"opset={opset} {label}: {type(e).__name__}: {clean(str(e))[:600]}"
                print(f"    dynamo: {msg}")
                notes.append(msg)
    raise RuntimeError("; ".join(notes))


def graph_is_dynamic(model_proto):
    """True when input and output have symbolic N, H and W."""
    def sym(vi):
        d = vi.type.tensor_type.shape.dim
        return len(d) == 4 and all(d[i].HasField("dim_param") for i in (0, 2, 3))
    return sym(model_proto.graph.input[0]) and sym(model_proto.graph.output[0])


def iter_nodes(graph):
    for n in graph.node:
        yield n
        for a in n.attribute:
            if a.g is not None and len(a.g.node):
                yield from iter_nodes(a.g)
            for sg in a.graphs:
                yield from iter_nodes(sg)


def op_name(node):
    if node.domain in ("", "ai.onnx"):
        return node.op_type
    return f"{node.domain}::{node.op_type}"


def analyse(path):
    """Op types, Resize/Pad/Softmax attributes and non-4-D activation inputs of an export."""
    import onnx
    from onnx import helper, numpy_helper, shape_inference
    m = onnx.load(path, load_external_data=True)
    ops = set()
    for n in iter_nodes(m.graph):
        ops.add(op_name(n))
    for f in m.functions:
        ops.add(f"function:{f.domain}::{f.name}")
        for n in f.node:
            ops.add(op_name(n))
    inits = {t.name: t for t in m.graph.initializer}
    consts = {}
    for n in m.graph.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    consts[n.output[0]] = numpy_helper.to_array(a.t)
    producers = {o: n for n in m.graph.node for o in n.output}

    def const_val(name):
        if name in inits:
            return numpy_helper.to_array(inits[name]).tolist()
        if name in consts:
            return consts[name].tolist()
        if name in producers:
            return f"<computed by {producers[name].op_type}>"
        return "<graph input?>"

    try:
        mi = shape_inference.infer_shapes(m, data_prop=True)
    except Exception:  # noqa: BLE001
        mi = m
    ranks, shapes, ftype = {}, {}, {}
    FLOATS = (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16,
              onnx.TensorProto.BFLOAT16)
    for vi in list(mi.graph.value_info) + list(mi.graph.input) + list(mi.graph.output):
        tt = vi.type.tensor_type
        ftype[vi.name] = tt.elem_type in FLOATS
        if tt.HasField("shape"):
            dims = tt.shape.dim
            ranks[vi.name] = len(dims)
            shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
                               for d in dims]
    for name, t in inits.items():
        ranks[name] = len(t.dims)
        shapes[name] = list(t.dims)
        ftype[name] = t.data_type in FLOATS
    for name, v in consts.items():
        ranks[name] = v.ndim
        shapes[name] = list(v.shape)
        ftype[name] = v.dtype.kind == "f"
    float_ops, int_ops = set(), set()

    resize, pad, softmax, non4d, other = [], [], [], {}, {}
    for n in m.graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in attrs.items()
                 if not hasattr(v, "dims")}
        if n.op_type == "Resize":
            ins = list(n.input) + [""] * (4 - len(n.input))
            resize.append({
                "mode": attrs.get("mode", "nearest"),
                "coordinate_transformation_mode": attrs.get("coordinate_transformation_mode",
                                                            "half_pixel"),
                "nearest_mode": attrs.get("nearest_mode", "round_prefer_floor"),
                "antialias": attrs.get("antialias", 0),
                "cubic_coeff_a": attrs.get("cubic_coeff_a", -0.75),
                "exclude_outside": attrs.get("exclude_outside", 0),
                "roi": const_val(ins[1]) if ins[1] else None,
                "scales": const_val(ins[2]) if ins[2] else None,
                "sizes": const_val(ins[3]) if ins[3] else None,
            })
        elif n.op_type == "Pad":
            ins = list(n.input) + [""] * (4 - len(n.input))
            pad.append({"mode": attrs.get("mode", "constant"),
                        "pads": const_val(ins[1]) if ins[1] else None,
                        "constant_value": const_val(ins[2]) if ins[2] else None,
                        "axes": const_val(ins[3]) if ins[3] else None})
        elif n.op_type == "Softmax":
            softmax.append({"axis": attrs.get("axis", -1)})
        elif n.op_type in ("InstanceNormalization", "BatchNormalization", "ConvTranspose",
                           "Conv", "MaxPool", "LeakyRelu", "PRelu", "ReduceMean", "ReduceMax",
                           "Concat", "Gemm", "MatMul", "Reshape", "Transpose", "Flatten",
                           "Squeeze", "Unsqueeze", "GlobalAveragePool", "Split", "Slice",
                           "Expand"):
            key = n.op_type
            a = {k: v for k, v in attrs.items()}
            other.setdefault(key, set()).add(json.dumps(a, sort_keys=True, default=str))
        # Float data path vs integer shape arithmetic; float activations that are not 4-D.
        if n.op_type == "Constant":
            continue
        is_float = any(ftype.get(i, False) for i in list(n.input) + list(n.output) if i)
        (float_ops if is_float else int_ops).add(n.op_type)
        act = [i for i in n.input if i and i not in inits and i not in consts]
        if is_float and any(ftype.get(i) and ranks.get(i, 4) != 4 for i in act):
            non4d.setdefault(n.op_type, set()).add(
                str([shapes.get(i, "?") for i in n.input if i]))
    raw = onnx.load(path, load_external_data=False)
    n_ext = sum(1 for t in raw.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL)
    n_in = len(raw.graph.initializer) - n_ext
    return {
        "op_types": sorted(ops),
        "opset": {(o.domain or "ai.onnx"): o.version for o in m.opset_import},
        "n_nodes": len(m.graph.node),
        "initializers": {"inline": n_in, "external": n_ext},
        "constant_nodes": sum(1 for n in m.graph.node if n.op_type == "Constant"),
        "resize": resize,
        "pad": pad,
        "softmax": softmax,
        "other_attrs": {k: sorted(v) for k, v in other.items()},
        "non4d_float_inputs": {k: sorted(v)[:6] for k, v in non4d.items()},
        "shape_arithmetic_only_ops": sorted(int_ops - float_ops),
        "ops_on_float_data": sorted(float_ops),
    }


def ort_run(path, x):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def build_one(entry, out_root):
    name, family, builder, cin, sizes, seed = entry
    print(f"== {name}")
    d = os.path.join(out_root, name)
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    torch.manual_seed(seed)
    model = builder()
    randomize(model, seed)
    model.eval()
    params = sum(p.numel() for p in model.parameters())

    rng = np.random.default_rng(seed)
    chosen, y = None, None
    size_notes = []
    for (h, w) in sizes:
        xs = rng.random((2, cin, h, w), dtype=np.float32)
        try:
            with torch.no_grad():
                y = model(torch.from_numpy(xs)).numpy()
            chosen = xs
            break
        except Exception as e:  # noqa: BLE001
            msg = f"size {h}x{w} failed in PyTorch: {type(e).__name__}: {str(e)[:200]}"
            print(f"    {msg}")
            size_notes.append(msg)
    if chosen is None:
        raise RuntimeError("; ".join(size_notes))
    x_np = chosen
    x = torch.from_numpy(x_np)
    if y.shape[2:] != x_np.shape[2:]:
        size_notes.append(f"output spatial size {y.shape[2:]} differs from input")
    np.save(os.path.join(d, "input.npy"), x_np.astype(np.float32))
    np.save(os.path.join(d, "output.npy"), y.astype(np.float32))

    m64 = copy.deepcopy(model).double()
    with torch.no_grad():
        y64 = m64(x.double()).numpy()
    f32_vs_f64 = rel(y, y64)
    print(f"    input {list(x_np.shape)} -> output {list(y.shape)}, params {params}, "
          f"f32 vs f64 {f32_vs_f64:.2e}, max|out| {np.abs(y).max():.3g}")

    # Other input sizes (one with the same parity pattern, one without where the model allows)
    # to check that exports with symbolic N/H/W really are dynamic.
    h, w = x_np.shape[2:]
    alts = []
    for dh, dw in ((8, -8), (1, 3), (16, 8), (-8, 8), (32, 32), (9, 1)):
        if len(alts) == 2:
            break
        cand = np.random.default_rng(seed + 99).random((1, cin, h + dh, w + dw), dtype=np.float32)
        try:
            with torch.no_grad():
                cy = model(torch.from_numpy(cand)).numpy()
        except Exception:  # noqa: BLE001
            continue
        if all(a[0].shape[2:] != cand.shape[2:] for a in alts):
            alts.append((cand, cy))

    entry_out = {
        "name": name, "family": family, "files": [], "input_shape": list(x_np.shape),
        "output_shape": list(y.shape), "dynamic": {}, "f32_vs_f64_rel": f32_vs_f64,
        "ort_rel": {}, "params": params, "op_types": {}, "seed": seed,
    }
    if size_notes:
        entry_out["size_notes"] = size_notes
    failed = {}
    details = {}
    alt_rel = {}
    for mode in ("torchscript", "dynamo"):
        path = os.path.join(d, f"{mode}.onnx")
        try:
            if mode == "torchscript":
                dyn, note = export_torchscript(model, x, path)
                opset = 17
                if note:
                    entry_out.setdefault("notes", {})[mode] = note
            else:
                label, notes, opset = export_dynamo(model, x, path)
                entry_out["dynamo_attempt"] = label
                if notes:
                    entry_out.setdefault("notes", {})[mode] = notes
                if opset is None:
                    entry_out.setdefault("notes", {}).setdefault("dynamo_opset", "default")
        except Exception as e:  # noqa: BLE001
            msg = f"{type(e).__name__}: {str(e).strip()[:500]}"
            print(f"    {mode} export FAILED: {msg}")
            failed[mode] = msg
            for p in (path, path + ".data"):
                if os.path.exists(p):
                    os.remove(p)
            continue
        import onnx
        proto = onnx.load(path, load_external_data=False)
        dyn = graph_is_dynamic(proto)
        entry_out["dynamic"][mode] = dyn
        entry_out["files"].append(f"{mode}.onnx")
        if mode == "dynamo" and not os.path.exists(path + ".data"):
            print("    WARNING: dynamo export has no external data file")
        try:
            o = ort_run(path, x_np)
            r = rel(o, y)
            entry_out["ort_rel"][mode] = r
            flag = "  WARNING > 1e-4" if r > 1e-4 else ""
            print(f"    {mode}: dynamic={dyn} ort_rel={r:.2e}{flag}")
            if list(o.shape) != list(y.shape):
                print(f"    WARNING: ORT output shape {o.shape} != torch {y.shape}")
        except Exception as e:  # noqa: BLE001
            msg = f"onnxruntime: {type(e).__name__}: {str(e).strip()[:500]}"
            print(f"    {mode}: {msg}")
            failed[mode + "_ort"] = msg
        for alt_x, alt_y in (alts if dyn else []):
            key = "x".join(str(v) for v in alt_x.shape)
            try:
                r2 = rel(ort_run(path, alt_x), alt_y)
                alt_rel.setdefault(mode, {})[key] = r2
                flag = "  WARNING > 1e-4" if r2 > 1e-4 else ""
                print(f"    {mode}: at {key} ort_rel={r2:.2e}{flag}")
            except Exception as e:  # noqa: BLE001
                msg = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300]}"
                alt_rel.setdefault(mode, {})[key] = msg
                print(f"    {mode}: at {key} ORT FAILED: {msg}")
            if not isinstance(alt_rel[mode][key], float) or alt_rel[mode][key] > 1e-3:
                entry_out.setdefault("shape_specialised", {})[mode] = (
                    "symbolic N/H/W, but only correct for some sizes (a shape-dependent "
                    "branch was traced at the export size)")
        a = analyse(path)
        entry_out["op_types"][mode] = a.pop("op_types")
        details[mode] = a
    if alt_rel:
        entry_out["ort_rel_other_size"] = alt_rel
    entry_out["details"] = details
    if failed:
        entry_out["failed"] = failed
    return entry_out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-o", "--out", default=os.path.join(ROOT, "tests", "fixtures", "onnx"))
    ap.add_argument("--only", default=None, help="comma-separated model names")
    args = ap.parse_args()
    torch.set_num_threads(max(1, min(8, os.cpu_count() or 1)))
    os.makedirs(args.out, exist_ok=True)
    only = set(args.only.split(",")) if args.only else None
    manifest_path = os.path.join(args.out, "manifest.json")
    previous = {}
    if only and os.path.exists(manifest_path):
        with open(manifest_path) as f:
            previous = {e["name"]: e for e in json.load(f)}
    entries = []
    for fam in FAMILIES:
        name = fam[0]
        if only and name not in only:
            if name in previous:
                entries.append(previous[name])
            continue
        try:
            entries.append(build_one(fam, args.out))
        except Exception as e:  # noqa: BLE001
            traceback.print_exc()
            entries.append({"name": name, "family": fam[1], "files": [],
                            "failed": {"model": f"{type(e).__name__}: {str(e)[:500]}"}})
    with open(manifest_path, "w") as f:
        json.dump(entries, f, indent=1)
        f.write("\n")
    print(f"wrote {manifest_path} ({len(entries)} entries); torch {torch.__version__}")


if __name__ == "__main__":
    sys.exit(main())
