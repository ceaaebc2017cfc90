"""The transformer kernels of the default CPU schedules against the oracle: GEMV (M=1) with
packed and padded weights, a weight read through a Transpose (tied embeddings), batched
matmuls of activations, row-wise softmax / layer norm on odd sizes, symbolic dims, and the
fast exp/erf/tanh polynomials."""

from __future__ import annotations

import math

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from codegen_testutil import check_against_oracle

F = TensorProto.FLOAT


def _graph(nodes, inputs, outputs, inits=()):
    import graphopt

    g = helper.make_graph(nodes, "t", inputs, outputs, [numpy_helper.from_array(a, n) for n, a in inits])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    m.ir_version = 9
    return graphopt.import_onnx(m)


def _vi(name, shape):
    return helper.make_tensor_value_info(name, F, shape)


def _rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("n", [48, 1037])  # 1037: no vector block divides it -> padded
def test_gemv_packed_weights(n):
    w = _rand(96, n, seed=1)
    g = _graph([helper.make_node("MatMul", ["x", "w"], ["y"])], [_vi("x", [1, 1, 96])], [_vi("y", [1, 1, n])],
               [("w", w)])
    check_against_oracle(g, {"x": _rand(1, 1, 96)})


def test_matmul_through_transposed_constant():
    """GPT-2's lm_head: MatMul(x, Transpose(embedding)) reads the table without a copy."""
    emb = _rand(203, 64, seed=2)
    g = _graph([helper.make_node("Transpose", ["e"], ["et"], perm=[1, 0]),
                helper.make_node("MatMul", ["x", "et"], ["y"]),
                helper.make_node("Gather", ["e", "ids"], ["z"], axis=0)],
               [_vi("x", [1, 64]), helper.make_tensor_value_info("ids", TensorProto.INT64, [3])],
               [_vi("y", [1, 203]), _vi("z", [3, 64])], [("e", emb)])
    check_against_oracle(g, {"x": _rand(1, 64), "ids": np.array([0, 5, 202], np.int64)})
    from codegen_testutil import lower_prepared

    low = lower_prepared(g)
    assert any(n.endswith(".weight") for n in low.param_names), low.param_names  # packed, not MatMul


@pytest.mark.parametrize("sa,sb", [([1, 3, 16, 8], [1, 3, 8, 32]), ([2, 5, 1, 7], [2, 5, 7, 19]),
                                   ([12, 1, 64], [12, 64, 129]), ([3, 17, 33], [3, 33, 5])])
def test_batched_matmul(sa, sb):
    g = _graph([helper.make_node("MatMul", ["a", "b"], ["c"]),
                helper.make_node("Mul", ["c", "s"], ["y"])],
               [_vi("a", sa), _vi("b", sb)], [_vi("y", sa[:-1] + sb[-1:])], [("s", np.array(0.125, np.float32))])
    check_against_oracle(g, {"a": _rand(*sa), "b": _rand(*sb, seed=3)})


def test_batched_matmul_symbolic_dims():
    g = _graph([helper.make_node("MatMul", ["a", "b"], ["c"])],
               [_vi("a", [4, "S", 8]), _vi("b", [4, 8, "S"])], [_vi("c", [4, "S", "S"])])
    from codegen_testutil import compile_graph

    model = compile_graph(g)
    for s in (5, 33):
        check_against_oracle(g, {"a": _rand(4, s, 8), "b": _rand(4, 8, s, seed=4)}, model=model)


@pytest.mark.parametrize("shape", [[2, 3, 129], [1, 4, 7, 64], [5, 1]])
def test_softmax_rows(shape):
    g = _graph([helper.make_node("Softmax", ["x"], ["y"], axis=-1)], [_vi("x", shape)], [_vi("y", shape)])
    x = _rand(*shape) * 4
    check_against_oracle(g, {"x": x})


def test_softmax_masked_rows():
    """-inf entries (attention masks) give exact zeros; a fully masked row gives NaN like
    the reference (the graphs guard it with IsNaN/Where)."""
    x = _rand(3, 64)
    x[0, :10] = -np.inf
    g = _graph([helper.make_node("Softmax", ["x"], ["y"], axis=-1)], [_vi("x", [3, 64])], [_vi("y", [3, 64])])
    from codegen_testutil import compile_graph

    y = compile_graph(g).run(x=x)[0]
    assert np.all(y[0, :10] == 0)
    np.testing.assert_allclose(y.sum(-1), 1, rtol=1e-5)


@pytest.mark.parametrize("shape", [[3, 77], [1, 5, 768], [2, 3, 48]])
def test_layer_norm_rows(shape):
    d = shape[-1]
    g = _graph([helper.make_node("LayerNormalization", ["x", "g", "b"], ["y"], axis=-1, epsilon=1e-5)],
               [_vi("x", shape)], [_vi("y", shape)], [("g", _rand(d, seed=5)), ("b", _rand(d, seed=6))])
    check_against_oracle(g, {"x": _rand(*shape) * 3 + 1})


@pytest.mark.parametrize("op", ["Exp", "Erf", "Tanh", "Sigmoid"])
def test_fast_math_accuracy(op):
    x = np.concatenate([np.linspace(-20, 20, 4001), [0.0, -0.0, 1e-30, -1e-8, 90.0, -90.0, -200.0,
                                                    np.inf, -np.inf, np.nan]])
    x = x.astype(np.float32)
    g = _graph([helper.make_node(op, ["x"], ["y"])], [_vi("x", [x.size])], [_vi("y", [x.size])])
    from codegen_testutil import compile_graph

    y = compile_graph(g).run(x=x)[0].astype(np.float64)
    ref = {"Exp": np.exp, "Tanh": np.tanh, "Erf": np.vectorize(math.erf),
           "Sigmoid": lambda v: 1 / (1 + np.exp(-v))}[op](x.astype(np.float64))
    ref = ref.astype(np.float32).astype(np.float64)  # float32 range (exp overflow -> inf)
    nan = np.isnan(ref)
    assert np.array_equal(np.isnan(y), nan)
    inf = np.isinf(ref)
    assert np.array_equal(y[inf], ref[inf])
    fin = ~nan & ~inf
    np.testing.assert_allclose(y[fin], ref[fin], rtol=2e-6, atol=1e-6)


def test_gelu_erf_epilogue():
    """BERT's GELU (x * 0.5 * (1 + erf(x / sqrt 2))) after a dense layer."""
    w = _rand(32, 48, seed=7)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]),
             helper.make_node("Div", ["h", "r2"], ["d"]),
             helper.make_node("Erf", ["d"], ["e"]),
             helper.make_node("Add", ["e", "one"], ["e1"]),
             helper.make_node("Mul", ["h", "e1"], ["m"]),
             helper.make_node("Mul", ["m", "half"], ["y"])]
    g = _graph(nodes, [_vi("x", [1, 5, 32])], [_vi("y", [1, 5, 48])],
               [("w", w), ("r2", np.array(math.sqrt(2), np.float32)), ("one", np.array(1, np.float32)),
                ("half", np.array(0.5, np.float32))])
    check_against_oracle(g, {"x": _rand(1, 5, 32)})


def test_gelu_tanh_with_pow():
    """GPT-2's GELU: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), Pow with exponent 3."""
    c = lambda v: np.array(v, np.float32)  # noqa: E731
    nodes = [helper.make_node("Pow", ["x", "three"], ["x3"]),
             helper.make_node("Mul", ["x3", "k"], ["a"]),
             helper.make_node("Add", ["x", "a"], ["b"]),
             helper.make_node("Mul", ["b", "s"], ["d"]),
             helper.make_node("Tanh", ["d"], ["t"]),
             helper.make_node("Add", ["t", "one"], ["t1"]),
             helper.make_node("Mul", ["x", "t1"], ["m"]),
             helper.make_node("Mul", ["m", "half"], ["y"])]
    g = _graph(nodes, [_vi("x", [3, 100])], [_vi("y", [3, 100])],
               [("three", c(3.0)), ("k", c(0.044715)), ("s", c(math.sqrt(2 / math.pi))), ("one", c(1.0)),
                ("half", c(0.5))])
    check_against_oracle(g, {"x": _rand(3, 100) * 3})
