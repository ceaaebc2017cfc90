"""Which kernels the default schedules run on the thread pool: the decision follows each
kernel's work (loop extents, multiply-accumulates), never the host's core count; small
kernels stay serial (waking the pool costs more than they take), large ones go parallel."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper


def _parallel_kernels(model_proto) -> dict[str, bool]:
    import graphopt
    from graphopt.codegen.build import prepare, schedule
    from graphopt.codegen.lower import lower
    from graphopt.codegen.target import Target
    from graphopt.compiler import prepare_graph
    from tvm import tirx

    g, _ = prepare_graph(graphopt.import_onnx(model_proto), "O1")
    t = Target.parse("cpu")
    mod = schedule(prepare(lower(g).mod, t.tvm), t)
    return {gv.name_hint: "T.parallel" in f.script() for gv, f in mod.functions.items()
            if isinstance(f, tirx.PrimFunc)}


def _model(nodes, x_shape, y_shape, inits=()):
    g = helper.make_graph(nodes, "m", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)], list(inits))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)


@pytest.mark.parametrize("n,parallel", [(16, False), (4096, False), (1 << 20, True)])
def test_elementwise(n, parallel):
    kernels = _parallel_kernels(_model([helper.make_node("Sigmoid", ["x"], ["y"])], [n], [n]))
    assert list(kernels.values()) == [parallel], kernels


@pytest.mark.parametrize("c,hw,parallel", [(8, 16, False), (64, 56, True)])
def test_packed_conv(c, hw, parallel):
    # 8 -> 4 channels on 16x16 (74k MACs, the tiny CNN's size class) against 64 -> 32 on
    # 56x56 (58M MACs, resnet's size class)
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((c // 2, c, 3, 3)).astype(np.float32), "w")
    m = _model([helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])], [1, c, hw, hw],
               [1, c // 2, hw, hw], [w])
    kernels = _parallel_kernels(m)
    from graphopt.codegen.kernels.tags import CONV2D

    conv = [v for k, v in kernels.items() if CONV2D in k]  # the kernel's function is named after its block
    assert conv == [parallel], kernels
