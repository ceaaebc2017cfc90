"""The oracle's choice of reference per op (one place: graphopt.testing.oracle), checked
against numbers worked out here by hand, not against onnxruntime or graphopt."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper

from graphopt.testing import compare_outputs, evaluate_model, reference_for


def _model(op, inputs, out_type, **attrs):
    vis = [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs]
    g = helper.make_graph([helper.make_node(op, [n for n, _, _ in inputs], ["y"], **attrs)], "g", vis,
                          [helper.make_tensor_value_info("y", out_type, None)])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)])


def test_matmul_integer_is_exact_int32():
    # vpmaddubsw (onnxruntime's u8 x s8 on AVX2) saturates 255*127 + 255*127 to 32767.
    m = _model("MatMulInteger", [("a", TensorProto.UINT8, [1, 4]), ("b", TensorProto.INT8, [4, 1])], TensorProto.INT32)
    y = evaluate_model(m, {"a": np.full((1, 4), 255, np.uint8), "b": np.full((4, 1), 127, np.int8)})[0]
    assert y.dtype == np.int32 and int(y[0, 0]) == 4 * 255 * 127


def test_matmul_integer_per_row_zero_point_of_a():
    m = _model("MatMulInteger", [("a", TensorProto.UINT8, [2, 2]), ("b", TensorProto.INT8, [2, 1]),
                                 ("az", TensorProto.UINT8, [2])], TensorProto.INT32)
    y = evaluate_model(m, {"a": np.array([[3, 3], [10, 10]], np.uint8), "b": np.array([[1], [1]], np.int8),
                           "az": np.array([1, 10], np.uint8)})[0]
    assert y.tolist() == [[4], [0]]  # row 0: (3-1)+(3-1); row 1: (10-10)+(10-10)


def test_nan_inputs_take_the_nan_keeping_reference_for_max_ops():
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    x[0, 0, 0, 0], x[0, 0, 3, 3] = np.nan, np.inf
    pool = _model("MaxPool", [("x", TensorProto.FLOAT, [1, 1, 4, 4])], TensorProto.FLOAT,
                  kernel_shape=[2, 2], strides=[2, 2])
    got = evaluate_model(pool, {"x": x})[0]
    assert np.isnan(got[0, 0, 0, 0]) and got[0, 0, 0, 1] == 7 and got[0, 0, 1, 0] == 13 and np.isinf(got[0, 0, 1, 1])
    row = np.array([[np.nan, np.inf, 2.61]], np.float32)
    rmax = _model("ReduceMax", [("x", TensorProto.FLOAT, [1, 3])], TensorProto.FLOAT, keepdims=0)
    assert np.isnan(evaluate_model(rmax, {"x": row})[0]).all()
    assert reference_for({"MaxPool"}, nonfinite_inputs=True) == "numpy"
    assert reference_for({"MaxPool"}) == reference_for({"Relu"}, nonfinite_inputs=True) == "onnxruntime"


def test_a_lost_nan_is_named_in_the_mismatch():
    bad = compare_outputs([np.array([np.nan, 1.0], np.float32)], [np.array([0.0, 1.0], np.float32)])
    assert len(bad) == 1 and "1 number(s) where the oracle has NaN" in bad[0].detail


def test_only_outputs_through_a_nan_losing_op_take_numpy():
    # onnx's reference drops NaN in AveragePool (it pads with NaN): that output stays
    # onnxruntime's, while the ReduceMax output takes numpy's.
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    x[0, 0, 0, 0] = np.nan
    vi = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])]
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("avg", "mx")]
    g = helper.make_graph([helper.make_node("AveragePool", ["x"], ["avg"], kernel_shape=[2, 2], strides=[2, 2]),
                           helper.make_node("ReduceMax", ["x"], ["mx"], keepdims=0)], "g", vi, outs)
    avg, mx = evaluate_model(helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)]), {"x": x})
    assert np.isnan(avg[0, 0, 0, 0]) and avg[0, 0, 0, 1] == np.mean([2, 3, 6, 7]) and np.isnan(mx).all()
