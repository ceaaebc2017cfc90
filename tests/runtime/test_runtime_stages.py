"""The runtime's other shapes of model: a staged one (``fallback="ort"``: TVM stages and
onnxruntime regions) runs and owns its outputs, and a saved artifact loads back into the
runtime and runs; both against onnxruntime on the whole model."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphopt
from graphopt.runtime import CompiledModel
from graphopt.runtime.stages import OrtStage, TvmStage

GAP_OP = "Det"  # taken out of the lowering table, so that fallback="ort" has a node to run


@pytest.fixture
def gap(monkeypatch):
    from graphopt.codegen.lower.registry import TABLE

    monkeypatch.delitem(TABLE, GAP_OP)


def _staged_model():
    """x -> Abs -> Det -> Add(bias) -> y, and x itself as a second output."""
    bias = numpy_helper.from_array(np.array([0.5, -1.0], np.float32), "bias")
    nodes = [helper.make_node("Abs", ["x"], ["r"], name="abs"),
             helper.make_node(GAP_OP, ["r"], ["g"], name="gap"),
             helper.make_node("Add", ["g", "bias"], ["y"], name="add"),
             helper.make_node("Identity", ["r"], ["r2"], name="copy")]
    g = helper.make_graph(nodes, "staged", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2]),
                           helper.make_tensor_value_info("r2", TensorProto.FLOAT, [2, 3, 3])], [bias])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def _oracle(model, x):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})


def _x(seed=0):
    return np.random.default_rng(seed).standard_normal((2, 3, 3)).astype(np.float32)


def _check(m, model, x):
    for got, want in zip(m.run(x), _oracle(model, x)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_a_staged_model_runs_and_owns_its_outputs(gap, tmp_path):
    model = _staged_model()
    m = graphopt.optimize(model, fallback="ort", opt_level=None)
    kinds = [type(s) for s in m.stages]
    assert OrtStage in kinds and TvmStage in kinds
    x = np.repeat(_x(), 2, axis=2)[:, :, ::2]  # strided: each stage takes what it can read
    _check(m, model, x)
    first = m.run(_x(1))
    kept = [a.copy() for a in first]
    m.run(_x(2))
    for a, k in zip(first, kept):
        np.testing.assert_array_equal(a, k)
    assert not np.shares_memory(first[0], first[1])
    loaded = CompiledModel.load(m.save(tmp_path / "staged"))
    _check(loaded, model, _x(3))


def test_save_load_round_trip_runs(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 4])
    w = numpy_helper.from_array(np.linspace(-1, 1, 20, dtype=np.float32).reshape(4, 5), "w")
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 5])
    model = helper.make_model(helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["m"]),
                                                 helper.make_node("Relu", ["m"], ["y"])], "mm", [x], [y], [w]),
                              opset_imports=[helper.make_opsetid("", 21)])
    m = graphopt.optimize(model)
    a = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    loaded = graphopt.load(m.save(tmp_path / "art"))
    again = graphopt.load(loaded.save(tmp_path / "again"))  # a loaded model saves again
    want = _oracle(model, a)[0]
    for mm in (m, loaded, again):
        np.testing.assert_allclose(mm(a), want, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(mm(x=a), want, rtol=1e-5, atol=1e-5)
