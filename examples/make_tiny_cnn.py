"""Builds examples/tiny_cnn.onnx: the small CNN the quick-start demo compiles.

A conv/batchnorm/relu/pool stack with a residual add and a classifier head, written at
opset 13 (graphopt upgrades it to its own opset on import), with a few things the -O1
cleanup removes: an Identity, an inference Dropout, a Reshape whose shape is computed by
Shape/Gather/Concat from static shapes, and weights built at run time by a Transpose.
Weights are random (seed 0, fan-in scaled), so the logits differ between classes.

    python examples/make_tiny_cnn.py examples/tiny_cnn.onnx
"""

from __future__ import annotations

import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def build() -> onnx.ModelProto:
    rng = np.random.default_rng(0)

    def w(name, *shape):
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else shape[0]
        return numpy_helper.from_array((rng.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32), name)

    inits = [
        w("conv1.weight", 8, 3, 3, 3), w("conv1.bias", 8),
        numpy_helper.from_array(np.ones(8, np.float32), "bn1.scale"),
        numpy_helper.from_array(np.zeros(8, np.float32), "bn1.shift"),
        numpy_helper.from_array((rng.standard_normal(8) * 0.1).astype(np.float32), "bn1.mean"),
        numpy_helper.from_array((rng.uniform(0.5, 1.5, 8)).astype(np.float32), "bn1.var"),
        w("conv2.weight", 8, 8, 3, 3), w("conv2.bias", 8),
        w("fc.weight_t", 8 * 4 * 4, 10),  # stored transposed; a Transpose node restores it
        w("fc.bias", 10),
        numpy_helper.from_array(np.array([0], np.int64), "zero"),
        numpy_helper.from_array(np.array([-1], np.int64), "minus_one"),
    ]
    nodes = [
        helper.make_node("Conv", ["input", "conv1.weight", "conv1.bias"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c1", "bn1.scale", "bn1.shift", "bn1.mean", "bn1.var"], ["b1"],
                         name="bn1"),
        helper.make_node("Relu", ["b1"], ["r1"], name="relu1"),
        helper.make_node("Identity", ["r1"], ["r1_id"], name="identity"),
        helper.make_node("Conv", ["r1_id", "conv2.weight", "conv2.bias"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("Add", ["r2", "r1"], ["res"], name="residual"),
        helper.make_node("MaxPool", ["res"], ["p1"], name="pool", kernel_shape=[4, 4], strides=[4, 4]),
        helper.make_node("Dropout", ["p1"], ["d1"], name="dropout"),
        helper.make_node("Shape", ["d1"], ["d1_shape"], name="shape"),
        helper.make_node("Gather", ["d1_shape", "zero"], ["batch"], name="gather_batch", axis=0),
        helper.make_node("Concat", ["batch", "minus_one"], ["flat_shape"], name="concat_shape", axis=0),
        helper.make_node("Reshape", ["d1", "flat_shape"], ["flat"], name="flatten"),
        helper.make_node("Transpose", ["fc.weight_t"], ["fc.weight"], name="transpose_fc", perm=[1, 0]),
        helper.make_node("Gemm", ["flat", "fc.weight", "fc.bias"], ["logits"], name="fc", transB=1),
    ]
    graph = helper.make_graph(
        nodes, "tiny_cnn",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="graphopt-examples")
    model.ir_version = 7
    onnx.checker.check_model(model, full_check=True)
    return model


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else "examples/tiny_cnn.onnx"
    onnx.save(build(), out)
    print(f"wrote {out}")
