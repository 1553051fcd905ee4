#!/usr/bin/env python3
"""Broken ONNX models for tests/malformed_onnx.rs, and the seed corpus of the `onnx_reader`
fuzz target. Each is tiny and made with onnx.helper (no PyTorch); run offline, never in CI:

    pip install onnx numpy
    python3 tools/make_bad_onnx.py

writes tests/fixtures/onnx_bad/*.onnx (+ external data files) and fuzz/corpus/onnx_reader/*.
"""
import os
import shutil

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
BAD = os.path.join(ROOT, "tests", "fixtures", "onnx_bad")
SEEDS = os.path.join(ROOT, "fuzz", "corpus", "onnx_reader")


def conv_model(nodes_extra=(), inits_extra=(), inputs=None, w=None, opset=17, output="y", nodes=None):
    """x [N,2,H,W] -> Conv 3x3 (4 out) -> Relu -> y, plus extras."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 2, 3, 3)).astype(np.float32) if w is None else w
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.zeros(4, np.float32), "b")]
    inits += list(inits_extra)
    if nodes is None:
        nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
                 helper.make_node("Relu", ["c"], ["y"], name="relu")]
    nodes = list(nodes) + list(nodes_extra)
    inputs = inputs or [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 2, "h", "w"])]
    g = helper.make_graph(nodes, "g", inputs,
                          [helper.make_tensor_value_info(output, TensorProto.FLOAT, ["n", 4, "h", "w"])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="make_bad_onnx")


def save(m, name, check=False):
    if check:
        onnx.checker.check_model(m)
    path = os.path.join(BAD, name)
    onnx.save(m, path)
    return path


def main():
    os.makedirs(BAD, exist_ok=True)
    os.makedirs(SEEDS, exist_ok=True)
    good = conv_model()
    good_path = save(good, "good.onnx", check=True)
    raw = open(good_path, "rb").read()
    open(os.path.join(BAD, "truncated.onnx"), "wb").write(raw[: len(raw) * 2 // 3])
    corrupt = bytearray(raw)
    corrupt[5] = 0xFF
    corrupt[6] = 0xFF
    open(os.path.join(BAD, "corrupted.onnx"), "wb").write(bytes(corrupt))
    # An op wunet does not run.
    save(conv_model(nodes=[helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
                           helper.make_node("Einsum", ["c"], ["y"], name="the_einsum", equation="nchw->nchw")]),
         "unsupported_op.onnx")
    # NaN weights.
    w = np.random.default_rng(0).standard_normal((4, 2, 3, 3)).astype(np.float32)
    w[1, 0, 2, 2] = np.nan
    save(conv_model(w=w), "nan_weights.onnx")
    # Weights whose shape does not fit the input's channels (3 in, the input has 2).
    save(conv_model(w=np.ones((4, 3, 3, 3), np.float32)), "weight_shape.onnx")
    # A node reading a name nothing defines.
    save(conv_model(nodes=[helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
                           helper.make_node("Add", ["c", "ghost"], ["y"], name="add_ghost")]),
         "dangling.onnx")
    # A cycle: a reads b, b reads a.
    save(conv_model(nodes=[helper.make_node("Add", ["x", "b2"], ["a2"], name="first"),
                           helper.make_node("Relu", ["a2"], ["b2"], name="second"),
                           helper.make_node("Relu", ["b2"], ["y"], name="third")]),
         "cycle.onnx")
    # Two image inputs.
    save(conv_model(inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 2, "h", "w"]),
                            helper.make_tensor_value_info("x2", TensorProto.FLOAT, ["n", 2, "h", "w"])]),
         "two_inputs.onnx")
    # A shape that depends on the image's values: Resize sizes from a Cast of the data.
    save(conv_model(nodes=[helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
                           helper.make_node("ReduceMax", ["c"], ["m"], name="rmax", axes=[1, 2, 3], keepdims=1),
                           helper.make_node("Cast", ["m"], ["mi"], name="cast", to=TensorProto.INT64),
                           helper.make_node("Reshape", ["mi", "one"], ["m1"], name="reshape"),
                           helper.make_node("Concat", ["nc", "m1", "m1"], ["sizes"], name="sizes", axis=0),
                           helper.make_node("Resize", ["c", "", "", "sizes"], ["y"], name="resize", mode="nearest")],
                    inits_extra=[numpy_helper.from_array(np.array([1], np.int64), "one"),
                                 numpy_helper.from_array(np.array([1, 4], np.int64), "nc")]),
         "unresolvable_shape.onnx")
    # External data: a good pair, then a short file, a missing file, and a path leaving the folder.
    ext = conv_model()
    onnx.save_model(ext, os.path.join(BAD, "external.onnx"), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="external.onnx.data", size_threshold=0)
    data = open(os.path.join(BAD, "external.onnx.data"), "rb").read()
    m = onnx.load(os.path.join(BAD, "external.onnx"), load_external_data=False)
    for t in m.graph.initializer:
        for e in t.external_data:
            if e.key == "location":
                e.value = "external_short.onnx.data"
    onnx.save(m, os.path.join(BAD, "external_short.onnx"))
    open(os.path.join(BAD, "external_short.onnx.data"), "wb").write(data[: len(data) // 2])
    for t in m.graph.initializer:
        for e in t.external_data:
            if e.key == "location":
                e.value = "missing.onnx.data"
    onnx.save(m, os.path.join(BAD, "external_missing.onnx"))
    for t in m.graph.initializer:
        for e in t.external_data:
            if e.key == "location":
                e.value = "../onnx/reference/dynamo.onnx.data"
    onnx.save(m, os.path.join(BAD, "external_escape.onnx"))
    # Seeds for the fuzzer: the small valid models, and a shape-arithmetic one.
    for name in ["good.onnx", "unsupported_op.onnx", "unresolvable_shape.onnx", "dangling.onnx"]:
        shutil.copy(os.path.join(BAD, name), os.path.join(SEEDS, name))
    shape_math = conv_model(nodes=[
        helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Shape", ["x"], ["s"], name="shape"),
        helper.make_node("Gather", ["s", "two"], ["h"], name="gather", axis=0),
        helper.make_node("Unsqueeze", ["h", "zero"], ["h1"], name="unsq"),
        helper.make_node("Mul", ["h1", "two"], ["h2"], name="mul"),
        helper.make_node("Concat", ["nc", "h2", "h2"], ["sizes"], name="cat", axis=0),
        helper.make_node("Resize", ["c", "", "", "sizes"], ["r"], name="resize", mode="linear",
                         coordinate_transformation_mode="half_pixel"),
        helper.make_node("Pad", ["r", "pads"], ["p"], name="pad", mode="reflect"),
        helper.make_node("MaxPool", ["p"], ["y"], name="pool", kernel_shape=[3, 3], strides=[2, 2],
                         pads=[1, 1, 1, 1], ceil_mode=1)],
        inits_extra=[numpy_helper.from_array(np.array(2, np.int64), "two"),
                     numpy_helper.from_array(np.array([0], np.int64), "zero"),
                     numpy_helper.from_array(np.array([1, 4], np.int64), "nc"),
                     numpy_helper.from_array(np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64), "pads")])
    onnx.save(shape_math, os.path.join(SEEDS, "shape_math.onnx"))
    print("wrote", sorted(os.listdir(BAD)))


if __name__ == "__main__":
    main()
