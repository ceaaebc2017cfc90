"""Named fused ops (graphopt.RMSNorm, the first): a schema and type inference like any op, a
reference decomposition into standard ops; they verify, print and parse back, export as an
ONNX local function whose body is the decomposition (onnx.checker passes, onnxruntime runs
it with the numbers of exact numpy), and import back as the same op."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import graphopt
from graphopt.ir import DType, Graph, TensorType, outline
from graphopt.ir.parser import parse_ir
from graphopt.ir.printer import print_ir
from graphopt.ir.verifier import verify
from graphopt.ops import InferError, build, decompose, get_schema
from graphopt.testing.oracle import evaluate_model


def _rms_graph(dt: DType, shape=(2, 3, 8), axis=-1, eps=1e-6) -> Graph:
    g = Graph("g", {"": 21, "graphopt": 1})
    x = g.add_input("x", TensorType(dt, shape))
    s = g.add_input("s", TensorType(dt, shape[axis % len(shape):]))
    n = build(g, "RMSNorm", [x, s], {"epsilon": eps, "axis": axis}, domain="graphopt", name="norm")
    g.set_outputs([build(g, "Relu", [n.output], name="relu").output])
    return g


def _exact(x: np.ndarray, s: np.ndarray, axis: int, eps: float) -> np.ndarray:
    xf = x.astype(np.float64)
    axes = tuple(range(axis % x.ndim, x.ndim))
    y = xf / np.sqrt((xf * xf).mean(axis=axes, keepdims=True) + eps) * s.astype(np.float64)
    return np.maximum(y, 0)


@pytest.mark.parametrize("dt,axis,tol", [(DType.FLOAT32, -1, 1e-5), (DType.FLOAT32, 1, 1e-5),
                                         (DType.FLOAT16, -1, 3e-3)])
def test_rms_norm_exports_as_its_decomposition_and_comes_back(dt, axis, tol):
    g = _rms_graph(dt, axis=axis)
    verify(g)
    text = print_ir(g)
    assert "graphopt.RMSNorm(%x, %s)" in text
    assert print_ir(parse_ir(text)) == text
    model = graphopt.export_onnx(g)  # checked inside; checked again here for the test's sake
    onnx.checker.check_model(model)
    (fn,) = model.functions
    assert fn.domain == "graphopt" and list(fn.attribute) == ["axis", "epsilon"]
    assert {n.op_type for n in fn.node} >= {"ReduceMean", "Sqrt", "Div"}
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 8)).astype(dt.numpy)
    s = rng.standard_normal(x.shape[axis % 3:]).astype(dt.numpy)
    (got,) = evaluate_model(model, {"x": x, "s": s})
    np.testing.assert_allclose(got.astype(np.float64), _exact(x, s, axis, 1e-6), rtol=tol, atol=tol)
    back = graphopt.import_onnx(model)
    assert print_ir(back) == text


def test_a_group_holding_a_named_op_round_trips_and_runs():
    g = _rms_graph(DType.FLOAT32)
    outline(g, list(g.nodes), "block")
    verify(g)
    text = print_ir(g)
    model = graphopt.export_onnx(g)
    assert sorted(f.name.split("_")[0] for f in model.functions) == ["FusedGroup", "RMSNorm"]
    rng = np.random.default_rng(1)
    x, s = rng.standard_normal((2, 3, 8)).astype(np.float32), rng.standard_normal(8).astype(np.float32)
    (got,) = evaluate_model(model, {"x": x, "s": s})
    np.testing.assert_allclose(got, _exact(x, s, -1, 1e-6), rtol=1e-5, atol=1e-5)
    assert print_ir(graphopt.import_onnx(model)) == text


def test_inference_refuses_a_scale_that_does_not_fit():
    g = Graph("g", {"": 21, "graphopt": 1})
    x = g.add_input("x", TensorType(DType.FLOAT32, (2, 8)))
    s = g.add_input("s", TensorType(DType.FLOAT32, (3,)))
    with pytest.raises(InferError, match="incompatible broadcast: shapes \\[8\\], \\[3\\]"):
        build(g, "RMSNorm", [x, s], domain="graphopt")


def test_decompose_refuses_an_op_without_one():
    g = Graph("g", {"": 21})
    x = g.add_input("x", TensorType(DType.FLOAT32, (2,)))
    n = build(g, "Relu", [x], name="r")
    with pytest.raises(InferError, match="node 'r' \\(Relu\\): the op has no reference decomposition"):
        decompose(n)


def test_every_graphopt_op_but_the_group_has_a_decomposition():
    ops = [s for s in graphopt.ops.supported_ops() if s.domain == "graphopt"]
    assert {s.op_type for s in ops} >= {"FusedGroup", "RMSNorm"}
    assert all(s.decomposition is not None for s in ops if s.op_type != "FusedGroup")
    assert get_schema("RMSNorm", "graphopt").traits.kind is not None


@pytest.mark.parametrize("dt,tol", [(DType.FLOAT32, 1e-5), (DType.FLOAT16, 3e-3)])
def test_rms_norm_compiles_through_its_decomposition(dt, tol):
    # No lowering of its own: codegen lowers the decomposition as one kernel.
    g = _rms_graph(dt, shape=(4, 16), axis=-1)
    compiled = graphopt.optimize(g, opt_level="O1")
    rng = np.random.default_rng(2)
    x, s = rng.standard_normal((4, 16)).astype(dt.numpy), rng.standard_normal(16).astype(dt.numpy)
    np.testing.assert_allclose(compiled(x, s).astype(np.float64), _exact(x, s, -1, 1e-6), rtol=tol, atol=tol)


@pytest.mark.parametrize("op,n_in", [("SiLU", 1), ("SwiGLU", 2)])
def test_elementwise_named_ops_round_trip_through_onnx(op, n_in):
    g = Graph("g", {"": 21, "graphopt": 1})
    ins = [g.add_input(f"i{k}", TensorType(DType.FLOAT32, (2, 8))) for k in range(n_in)]
    g.set_outputs([build(g, op, ins, domain="graphopt", name="act").output])
    verify(g)
    model = graphopt.export_onnx(g)
    rng = np.random.default_rng(3)
    feeds = {f"i{k}": rng.standard_normal((2, 8)).astype(np.float32) for k in range(n_in)}
    (got,) = evaluate_model(model, feeds)
    x = feeds["i0"].astype(np.float64)
    want = x / (1 + np.exp(-x)) * (feeds["i1"] if n_in == 2 else 1)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert print_ir(graphopt.import_onnx(model)) == print_ir(g)
