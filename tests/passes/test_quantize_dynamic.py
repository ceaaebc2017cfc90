"""quantize-dynamic: the float activation of a matmul with a quantized weight becomes
DynamicQuantizeLinear + DequantizeLinear (one pair per activation value); a matmul without
a quantized weight, an excluded one and an activation quantized already stay; a second run
changes nothing; onnxruntime runs the result, and the compiled graph matches it."""

from __future__ import annotations

import io

import numpy as np
import pytest

import graphopt
from graphopt.ir import DType, Graph, TensorData, TensorType
from graphopt.ir.verifier import verify
from graphopt.ops import build
from graphopt.pipeline import run_pipeline
from graphopt.pipeline.errors import PassFailedError
from graphopt.testing import assert_close, run_reference

F32 = DType.FLOAT32


def qkv(K: int = 64, N: int = 48, opset: int = 21) -> Graph:
    """x [2, 8, K] read by three MatMuls (q, k, v projections) and a Relu."""
    rng = np.random.default_rng(0)
    g = Graph("g", {"": opset})
    x = g.add_input("x", TensorType(F32, (2, 8, K)))
    outs = []
    for p in "qkv":
        w = g.add_constant("w" + p, TensorData.from_numpy(rng.standard_normal((K, N)).astype(np.float32)))
        outs.append(build(g, "MatMul", [x, w], name="mm_" + p).output)
    outs.append(build(g, "Relu", [x], name="relu").output)
    g.outputs = outs
    return g


def test_changed_one_pair_per_activation_and_idempotent():
    g = qkv()
    run_pipeline(g, "quantize-weights{min-elements=1}")
    run = run_pipeline(g, "quantize-dynamic", verify_each=True)
    assert any(r.changed for r in run.records)
    verify(g)
    dql = [n for n in g.nodes if n.op_type == "DynamicQuantizeLinear"]
    assert len(dql) == 1 and dql[0].provenance.rule == "quantize-dynamic.activation"
    act = {n.inputs[0] for n in g.nodes if n.op_type == "MatMul"}
    assert len(act) == 1 and next(iter(act)).producer.op_type == "DequantizeLinear"
    assert next(n for n in g.nodes if n.name == "relu").inputs[0] is g.inputs[0], "other readers keep x"
    again = run_pipeline(g, "quantize-dynamic", verify_each=True)
    assert not any(r.changed for r in again.records)
    text = graphopt.print_ir(g)
    assert graphopt.print_ir(graphopt.parse_ir(text)) == text
    x = np.random.default_rng(1).standard_normal((2, 8, 64)).astype(np.float32)
    assert_close(run_reference(g, {"x": x}), graphopt.optimize(g).run(x=x))


@pytest.mark.parametrize("prep,options,reason", [
    ("", "", "its weight is not a quantized constant (run quantize-weights first)"),
    ("quantize-weights{min-elements=1}", "{exclude=(mm_q,mm_k,mm_v)}", "excluded by name"),
])
def test_unchanged_with_the_reason(prep, options, reason):
    g = qkv()
    if prep:
        run_pipeline(g, prep)
    before = graphopt.print_ir(g)
    out = io.StringIO()
    run = run_pipeline(g, f"quantize-dynamic{options}", explain=out, verify_each=True)
    assert not any(r.changed for r in run.records) and graphopt.print_ir(g) == before
    assert reason in out.getvalue(), out.getvalue()


def test_needs_opset_11_and_names_the_graph():
    g = qkv(opset=10)
    g.opset_imports[""] = 10
    with pytest.raises(PassFailedError, match="needs opset 11; graph 'g' imports opset 10"):
        graphopt.run_passes(g, "quantize-dynamic")


def test_quantize_api_and_report_with_dynamic(tmp_path):
    g = qkv()
    q, report = graphopt.quantize(g, dynamic=True, min_elements=1)
    assert "dynamic" in report.mode
    assert [n.op_type for n in q.nodes].count("DynamicQuantizeLinear") == 1
    assert all(o.cosine > 0.99 for o in report.outputs), report.outputs


def test_quantize_excludes_several_names():
    """Several names reach both passes (the spec keeps their commas in parentheses)."""
    q, _ = graphopt.quantize(qkv(), dynamic=True, min_elements=1, exclude=["mm_q", "mm_k"])
    weights = {n.name for n in q.nodes if n.op_type == "MatMul" and n.inputs[1].producer is not None}
    assert weights == {"mm_v"}, weights
