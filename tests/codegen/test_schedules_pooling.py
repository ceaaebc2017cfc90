"""The pooling (window) schedule rule: strided pools vectorize along the output row with
the window loops inside; stride-1 pools keep the generic schedule (measured slower)."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from codegen_testutil import check_against_oracle, compile_graph


def _pool_graph(op, x_shape, **attrs):
    import graphopt

    g = helper.make_graph([helper.make_node(op, ["x"], ["y"], **attrs)], "pool",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["a", "b", "c", "d"])])
    return graphopt.import_onnx(helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)], ir_version=9))


@pytest.mark.parametrize("op,attrs,rule", [
    ("MaxPool", dict(kernel_shape=[3, 3], strides=[2, 2]), "window"),                      # squeezenet's
    ("MaxPool", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]), "window"),   # resnet's
    ("AveragePool", dict(kernel_shape=[2, 2], strides=[2, 2]), "window"),                  # densenet's
    ("AveragePool", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=0), "window"),
    ("MaxPool", dict(kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1]), "generic"),  # inception's
])
def test_pool_schedule_and_numbers(op, attrs, rule):
    g = _pool_graph(op, [1, 6, 27, 29], **attrs)
    x = np.random.default_rng(0).standard_normal((1, 6, 27, 29)).astype(np.float32)
    model = compile_graph(g)
    assert model.report.scheduled.get(rule, 0) >= 1, model.report.scheduled
    if rule == "generic":
        assert "window" not in model.report.scheduled
    check_against_oracle(g, {"x": x}, model=model)
