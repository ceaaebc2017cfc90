"""quantize-static: the float activation of a matmul with a quantized weight becomes
QuantizeLinear + DequantizeLinear with the u8 scale and zero point of its calibrated range
(one pair per activation value); a matmul without a quantized weight, an excluded one and
an activation the table has no range for stay; a second run changes nothing. The compiled
graph is the integer kernel, and equals exact numpy arithmetic on onnxruntime's own
QuantizeLinear integers (and onnxruntime's float execution of the QDQ graph within its
tolerance), for hypothesis shapes, ranges and calibration methods."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graphopt
from graphopt.calibration import CalibrationTable, calibrate, observe
from graphopt.codegen.target import host_cpu
from graphopt.ir import DType, Graph, TensorData, TensorType
from graphopt.ir.verifier import verify
from graphopt.ops import build
from graphopt.pipeline import run_pipeline
from graphopt.pipeline.errors import PassFailedError, PassOptionError
from graphopt.testing import assert_close, run_reference
from graphopt.testing.settings import examples

from test_quantize_dynamic import qkv

AVX2 = "avx2" in host_cpu().features


def table_for(g: Graph, tmp_path, method: str = "minmax", seed: int = 1, n: int = 4) -> str:
    rng = np.random.default_rng(seed)
    x = g.inputs[0]
    samples = [{x.name: rng.standard_normal(x.type.shape).astype(np.float32)} for _ in range(n)]
    path = tmp_path / "table.json"
    calibrate(g, samples, method).save(path)
    return str(path)


def test_changed_one_pair_per_activation_with_the_tables_scale_and_idempotent(tmp_path):
    g = qkv()
    path = table_for(g, tmp_path)
    run_pipeline(g, "quantize-weights{min-elements=1}")
    run = run_pipeline(g, f"quantize-static{{table={path}}}", verify_each=True)
    assert any(r.changed for r in run.records)
    verify(g)
    ql = [n for n in g.nodes if n.op_type == "QuantizeLinear"]
    assert len(ql) == 1 and ql[0].provenance.rule == "quantize-static.activation"
    qp = CalibrationTable.load(path).qparams("x")
    assert float(ql[0].inputs[1].const.numpy()) == np.float32(qp.scale)
    assert int(ql[0].inputs[2].const.numpy()) == qp.zero and ql[0].output.type.dtype is DType.UINT8
    act = {n.inputs[0] for n in g.nodes if n.op_type == "MatMul"}
    assert len(act) == 1 and next(iter(act)).producer.op_type == "DequantizeLinear"
    assert next(n for n in g.nodes if n.name == "relu").inputs[0] is g.inputs[0], "other readers keep x"
    again = run_pipeline(g, f"quantize-static{{table={path}}}", verify_each=True)
    assert not any(r.changed for r in again.records)
    text = graphopt.print_ir(g)
    assert graphopt.print_ir(graphopt.parse_ir(text)) == text
    x = np.random.default_rng(2).standard_normal((2, 8, 64)).astype(np.float32)
    compiled = graphopt.optimize(g)
    assert_close(run_reference(g, {"x": x}), compiled.run(x=x))
    if AVX2:
        assert "gidense" in compiled.report.kernel_names, compiled.report.kernel_names


@pytest.mark.parametrize("prep,options,reason", [
    ("", "", "its weight is not a quantized constant (run quantize-weights first)"),
    ("quantize-weights{min-elements=1}", ",exclude=(mm_q,mm_k,mm_v)", "excluded by name"),
    ("quantize-weights{min-elements=1}", "", "the calibration table has no range for its activation %x"),
])
def test_unchanged_with_the_reason(tmp_path, prep, options, reason):
    g = qkv()
    path = tmp_path / "t.json"
    if "no range" in reason:
        CalibrationTable("minmax", 1, {"other": (-1.0, 1.0)}).save(path)
    else:
        path = table_for(g, tmp_path)
    if prep:
        run_pipeline(g, prep)
    before = graphopt.print_ir(g)
    out = io.StringIO()
    run = run_pipeline(g, f"quantize-static{{table={path}{options}}}", explain=out, verify_each=True)
    assert not any(r.changed for r in run.records) and graphopt.print_ir(g) == before
    assert reason in out.getvalue(), out.getvalue()


def test_the_table_is_required_and_a_bad_one_is_named(tmp_path):
    g = qkv()
    run_pipeline(g, "quantize-weights{min-elements=1}")
    with pytest.raises((PassFailedError, PassOptionError), match="needs table=PATH"):
        graphopt.run_passes(g, "quantize-static")
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "graphopt-calibration", "version": 1, "ranges": {"x": [2, 1]}}')
    with pytest.raises((PassFailedError, PassOptionError), match=r"bad.json: the range of 'x' is \[2, 1\]"):
        graphopt.run_passes(g, f"quantize-static{{table={bad}}}")


def single(kind: str, M: int, K: int, N: int, seed: int) -> Graph:
    """One MatMul x [M, K] @ w [K, N] (or Gemm with transB and a bias) of float weights."""
    rng = np.random.default_rng(seed)
    g = Graph("g", {"": 21})
    x = g.add_input("x", TensorType(DType.FLOAT32, (M, K)))
    if kind == "gemm":
        w = g.add_constant("w", TensorData.from_numpy(rng.standard_normal((N, K)).astype(np.float32)))
        c = g.add_constant("c", TensorData.from_numpy(rng.standard_normal(N).astype(np.float32)))
        g.outputs = [build(g, "Gemm", [x, w, c], {"transB": 1}, name="mm").output]
    else:
        w = g.add_constant("w", TensorData.from_numpy(rng.standard_normal((K, N)).astype(np.float32)))
        g.outputs = [build(g, "MatMul", [x, w], name="mm").output]
    return g


def exact(q: Graph, x: np.ndarray) -> np.ndarray:
    """numpy on quantized ``q``'s own constants: the activation's integers from
    onnxruntime's QuantizeLinear, the sums in int64 (exact), scaled in float64."""
    ql = next(n for n in q.nodes if n.op_type == "QuantizeLinear")
    xq = next(observe(q, [ql.output.name], [{"x": x}]))[ql.output.name].astype(np.int64)
    xs, xz = float(ql.inputs[1].const.numpy()), int(ql.inputs[2].const.numpy())
    mm = next(n for n in q.nodes if n.name == "mm")
    wdq = mm.inputs[1].producer
    wq = wdq.inputs[0].const.numpy().astype(np.int64)
    ws = wdq.inputs[1].const.numpy().astype(np.float64)
    if mm.op_type == "Gemm":   # w [N, K], a scale per row
        y = ((xq - xz) @ wq.T).astype(np.float64) * ws * xs + q.lookup("c").const.numpy()
    else:                      # w [K, N], a scale per column
        y = ((xq - xz) @ wq).astype(np.float64) * ws * xs
    return y


@pytest.mark.skipif(not AVX2, reason="the integer kernel needs AVX2")
@settings(max_examples=examples(6), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(["matmul", "gemm"]), M=st.integers(1, 9), K=st.integers(2, 80), N=st.integers(1, 40),
       method=st.sampled_from(["minmax", "percentile", "entropy"]), shift=st.floats(-3, 3),
       spread=st.floats(0.01, 20), seed=st.integers(0, 2**16))
def test_hypothesis_static_qdq_is_the_integer_kernel_and_exact(kind, M, K, N, method, shift, spread, seed):
    g = single(kind, M, K, N, seed)
    rng = np.random.default_rng(seed)
    data = {"x": (shift + spread * rng.standard_normal((6, M, K))).astype(np.float32)}
    q, report = graphopt.quantize(g, data, static=True, method=method, min_elements=1)
    assert [a.value for a in report.activations] == ["x"]
    x = (shift + spread * 1.5 * rng.standard_normal((M, K))).astype(np.float32)   # some values saturate
    compiled = graphopt.optimize(q)
    got = np.asarray(compiled.run(x=x)[0])
    want = exact(q, x)
    # onnxruntime's float32 QDQ sums round where terms cancel: the exact integer sum is the reference
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=2e-6 * max(np.abs(want).max(), 1e-30))
    assert "gidense" in compiled.report.kernel_names, compiled.report.kernel_names
