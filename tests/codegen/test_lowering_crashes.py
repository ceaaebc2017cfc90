"""Lowering bugs the conformance run counted as crashes (internal errors), each against exact
numpy: float Mod with fmod=1 (C's fmod), Reshape with allowzero to an empty shape given at
run time, MatMul of a 1-D by a 3-D input, and a bfloat16 ReduceMax (NaN checks)."""

from __future__ import annotations

import numpy as np
import pytest

from graphopt.ir import DType, Graph, TensorData, TensorType
from graphopt.ops import build

from codegen_testutil import compile_graph


@pytest.mark.parametrize("dt", [DType.FLOAT32, DType.FLOAT64])
def test_float_fmod_keeps_the_dividends_sign(dt):
    g = Graph("g", {"": 21})
    a = g.add_input("a", TensorType(dt, (2, 3)))
    b = g.add_input("b", TensorType(dt, (3,)))
    g.outputs = [build(g, "Mod", [a, b], {"fmod": 1}, name="mod").output]
    x = np.array([[5.5, -5.5, 7.25], [-1.0, 3.0, -0.5]], dt.numpy)
    y = np.array([2.0, 2.0, -3.0], dt.numpy)
    np.testing.assert_allclose(compile_graph(g)(x, y), np.fmod(x, y), rtol=1e-6)


@pytest.mark.parametrize("known", [True, False])
def test_reshape_allowzero_to_an_empty_runtime_shape(known):
    # known: the output type is [3, 4, 0] (as onnx's shape inference gives it on import);
    # else three symbols, bound at run time.
    g = Graph("g", {"": 21})
    x = g.add_input("x", TensorType(DType.FLOAT32, (0, 3, 4)))
    s = g.add_input("s", TensorType(DType.INT64, (3,)))
    out_t = TensorType(DType.FLOAT32, (3, 4, 0) if known else ("a", "b", "c"))
    g.outputs = [g.add_node("Reshape", [x, s], [out_t], {"allowzero": 1}, name="reshape").output]
    out = compile_graph(g)(np.zeros((0, 3, 4), np.float32), np.array([3, 4, 0], np.int64))
    assert out.shape == (3, 4, 0) and out.dtype == np.float32


def test_matmul_of_a_vector_by_a_batch():
    g = Graph("g", {"": 21})
    a = g.add_input("a", TensorType(DType.FLOAT32, (4,)))
    b = g.add_input("b", TensorType(DType.FLOAT32, (2, 4, 3)))
    g.outputs = [build(g, "MatMul", [a, b], name="matmul").output]
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal(4).astype(np.float32), rng.standard_normal((2, 4, 3)).astype(np.float32)
    np.testing.assert_allclose(compile_graph(g)(x, y), np.matmul(x, y), rtol=1e-5, atol=1e-6)


def test_bfloat16_reduce_max_keeps_nan():
    g = Graph("g", {"": 21})
    x = g.add_input("x", TensorType(DType.FLOAT32, (2, 4)))
    xb = build(g, "Cast", [x], {"to": DType.BFLOAT16.onnx}, name="to_bf16").output
    axes = g.add_constant("axes", TensorData.from_numpy(np.array([1], np.int64)))
    r = build(g, "ReduceMax", [xb, axes], {"keepdims": 0}, name="max").output
    g.outputs = [build(g, "Cast", [r], {"to": DType.FLOAT32.onnx}, name="back").output]
    got = compile_graph(g)(np.array([[1.0, np.nan, 3.0, 2.0], [0.5, -1.0, 4.0, 2.0]], np.float32))
    assert np.isnan(got[0]) and got[1] == 4.0
