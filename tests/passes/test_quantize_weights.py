"""quantize-weights: a MatMul/Gemm's large float32 weight becomes DequantizeLinear of int8
or int4 constants (per output column, or blocks along K), symmetric or with zero points;
the dequantized weight is within half a step of the original (int4 symmetric: within one
step, its scale searched); small, excluded and computed weights stay; a second run
changes nothing; onnxruntime runs the result."""

from __future__ import annotations

import io

import numpy as np
import pytest

import graphopt
from graphopt.ir import DType, Graph, TensorData, TensorType
from graphopt.ir.verifier import verify
from graphopt.ops import build
from graphopt.ops.weight_quant import matmul_weight
from graphopt.pipeline import run_pipeline
from graphopt.pipeline.errors import PassFailedError, PassOptionError
from graphopt.testing import run_reference

F32 = DType.FLOAT32


def linear(kind: str = "matmul", K: int = 64, N: int = 96, rows=(2, 64), opset: int = 21, seed: int = 0) -> Graph:
    """x [rows..., K] times a constant weight: MatMul [K, N], Gemm with transB [N, K], or a
    tied head (MatMul of Transpose([N, K]))."""
    rng = np.random.default_rng(seed)
    g = Graph("g", {"": opset})
    x = g.add_input("x", TensorType(F32, tuple(rows[:-1]) + (K,)))
    if kind == "matmul":
        w = g.add_constant("w", TensorData.from_numpy(rng.standard_normal((K, N)).astype(np.float32)))
        y = build(g, "MatMul", [x, w], name="mm").output
    elif kind == "gemm":
        w = g.add_constant("w", TensorData.from_numpy(rng.standard_normal((N, K)).astype(np.float32)))
        c = g.add_constant("c", TensorData.from_numpy(rng.standard_normal((N,)).astype(np.float32)))
        y = build(g, "Gemm", [x, w, c], {"transB": 1, "alpha": 0.5}, name="mm").output
    else:
        w = g.add_constant("w", TensorData.from_numpy(rng.standard_normal((N, K)).astype(np.float32)))
        wt = build(g, "Transpose", [w], {"perm": [1, 0]}, name="wt").output
        y = build(g, "MatMul", [x, wt], name="mm").output
    g.outputs = [y]
    return g


def _weight_nk(g: Graph) -> np.ndarray:
    w = g.lookup("w").const.numpy()
    return w.T if g.lookup("w").uses()[0].node.op_type == "MatMul" else w


@pytest.mark.parametrize("kind", ["matmul", "gemm", "tied"])
@pytest.mark.parametrize("block", [0, 16])
def test_changed_within_half_a_step(kind, block):
    g = linear(kind, K=64, N=96)
    w_nk = _weight_nk(g)
    run = run_pipeline(g, f"quantize-weights{{block={block}}},dce", verify_each=True)
    assert any(r.changed for r in run.records)
    verify(g)
    dq = [n for n in g.nodes if n.op_type == "DequantizeLinear"]
    assert len(dq) == 1 and dq[0].inputs[0].type.dtype is DType.INT8
    assert dq[0].provenance.rule == "quantize-weights.int8"
    assert (dq[0].attr("block_size", 0) or 0) == block
    mm = next(n for n in g.nodes if n.name == "mm")
    nk = matmul_weight(mm)
    assert nk is not None and nk.q.shape == w_nk.shape
    step = np.repeat(nk.scale, nk.block, axis=1)[:, : w_nk.shape[1]]
    assert np.all(np.abs(nk.dequantized() - w_nk) <= step / 2 + 1e-7)
    assert np.abs(nk.q).max() == 127  # symmetric: each scale's largest weight maps to +-127
    assert g.lookup("w") is None, "the float weight is gone (dce)"
    again = run_pipeline(g, f"quantize-weights{{block={block}}}", verify_each=True)
    assert not any(r.changed for r in again.records)
    text = graphopt.print_ir(g)
    assert graphopt.print_ir(graphopt.parse_ir(text)) == text


def test_blocks_follow_an_outlier_that_one_column_scale_does_not():
    g0, g1 = linear(K=128, N=16), linear(K=128, N=16)
    w = g0.lookup("w").const.numpy().copy()
    w[5, 3] = 100.0  # one outlier in column 3
    for g in (g0, g1):
        g.set_constant_data(g.lookup("w"), TensorData.from_numpy(w))
    graphopt.run_passes(g0, "quantize-weights{block=0,min-elements=1}")
    graphopt.run_passes(g1, "quantize-weights{block=32,min-elements=1}")
    # column 3 away from the outlier's block (rows 32..127): one column scale is coarse there
    err = [np.abs(matmul_weight(g.nodes[-1]).dequantized() - w.T)[3, 32:].max() for g in (g0, g1)]
    assert err[1] < err[0] / 2, err


@pytest.mark.parametrize("options,reason", [
    ("min-elements=100000", "under min-elements 100000"),
    ("exclude=mm", "excluded by name"),
])
def test_unchanged_with_the_reason(options, reason):
    g = linear()
    before = graphopt.print_ir(g)
    out = io.StringIO()
    run = run_pipeline(g, f"quantize-weights{{{options}}}", explain=out, verify_each=True)
    assert not any(r.changed for r in run.records) and graphopt.print_ir(g) == before
    assert reason in out.getvalue(), out.getvalue()


def test_a_computed_weight_is_left_alone():
    g = Graph("g", {"": 21})
    x = g.add_input("x", TensorType(F32, (4, 8)))
    w = g.add_input("w", TensorType(F32, (8, 8)))
    g.outputs = [build(g, "MatMul", [x, w], name="mm").output]
    run = run_pipeline(g, "quantize-weights{min-elements=1}")
    assert not any(r.changed for r in run.records)


def test_a_weight_shared_by_two_matmuls_is_quantized_once():
    g = linear()
    y2 = build(g, "MatMul", [g.inputs[0], g.lookup("w")], name="mm2").output
    g.outputs = list(g.outputs) + [y2]
    graphopt.run_passes(g, "quantize-weights,dce")
    assert [n.op_type for n in g.nodes].count("DequantizeLinear") == 1
    assert all(matmul_weight(n) is not None for n in g.nodes if n.op_type == "MatMul")


@pytest.mark.parametrize("spec,msg", [
    ("quantize-weights{bits=3}", r"bits=3 is not supported \(4 or 8\)"),
    ("quantize-weights{block=-1}", "must be 0 or positive"),
])
def test_bad_options_say_what(spec, msg):
    with pytest.raises(PassOptionError, match=msg):
        graphopt.run_passes(linear(), spec)


def test_blocks_need_opset_21_and_the_error_names_the_graph():
    with pytest.raises(PassFailedError, match="needs opset 21; graph 'g' imports opset 18"):
        graphopt.run_passes(linear(opset=18), "quantize-weights{block=32}")
    with pytest.raises(PassFailedError, match="int4 DequantizeLinear needs opset 21; graph 'g' imports opset 18"):
        graphopt.run_passes(linear(opset=18), "quantize-weights{bits=4}")
    g = linear(opset=18)
    graphopt.run_passes(g, "quantize-weights")  # per column: opset 13 is enough
    assert any(n.op_type == "DequantizeLinear" for n in g.nodes)


def test_fold_constants_keeps_a_quantized_weight_and_folds_other_dequantizes():
    g = linear()
    graphopt.run_passes(g, "quantize-weights")
    other = build(g, "DequantizeLinear", [g.add_constant("q2", TensorData.from_numpy(np.ones((96,), np.int8))),
                                          g.add_constant("s2", TensorData.from_numpy(np.float32(0.5)))], name="dq2")
    g.outputs = [build(g, "Add", [g.outputs[0], other.output], name="add").output]
    out = io.StringIO()
    graphopt.run_passes(g, "fold-constants", explain=out)
    ops = [n.op_type for n in g.nodes]
    assert ops.count("DequantizeLinear") == 1 and g.lookup("dq2").is_constant, ops
    assert "a quantized weight stays quantized" in out.getvalue()


@pytest.mark.parametrize("kind", ["matmul", "gemm", "tied"])
@pytest.mark.parametrize("bits,zero_point,block", [(4, False, 32), (4, False, 0), (4, True, 16), (8, True, 16),
                                                   (8, True, 0)])
def test_int4_and_zero_points(kind, bits, zero_point, block):
    g = linear(kind, K=64, N=96)
    w_nk = _weight_nk(g)
    spec = f"quantize-weights{{bits={bits},block={block},zero-point={int(zero_point)}}}"
    run = run_pipeline(g, spec + ",dce", verify_each=True)
    assert any(r.changed for r in run.records)
    dq = [n for n in g.nodes if n.op_type == "DequantizeLinear"]
    want = {(4, False): DType.INT4, (4, True): DType.UINT4, (8, True): DType.UINT8}[(bits, zero_point)]
    assert len(dq) == 1 and dq[0].inputs[0].type.dtype is want
    assert (len(dq[0].inputs) == 3) == zero_point and (not zero_point or dq[0].inputs[2].type.dtype is want)
    assert dq[0].provenance.rule == f"quantize-weights.int{bits}"
    nk = matmul_weight(next(n for n in g.nodes if n.name == "mm"))
    assert nk is not None and nk.bits == bits
    lo, hi = want.int_range
    assert lo <= nk.q.min() and nk.q.max() <= hi
    step = np.repeat(nk.scale, nk.block, axis=1)[:, : w_nk.shape[1]]
    # a zero point spans the block's range: half a step; int4's searched scale may clip the
    # largest weight by up to a step
    bound = step / 2 if zero_point else step
    assert np.all(np.abs(nk.dequantized() - w_nk) <= bound + 1e-6)
    again = run_pipeline(g, spec, verify_each=True)
    assert not any(r.changed for r in again.records)
    text = graphopt.print_ir(g, full_constants=True)
    assert graphopt.print_ir(graphopt.parse_ir(text), full_constants=True) == text
    # ordinary QDQ ONNX: onnxruntime runs what graphopt exports, and agrees with the
    # dequantized weight's float product
    x = np.random.default_rng(3).standard_normal(g.inputs[0].type.shape).astype(np.float32)
    back = graphopt.import_onnx(graphopt.export_onnx(g))
    got = run_reference(back, {"x": x})[0]
    ref = run_reference(g, {"x": x})[0]
    np.testing.assert_array_equal(got, ref)


def test_the_int4_scale_search_beats_max_over_7():
    """Per block the searched scale's squared error is at most amax / 7's (it is one of the
    candidates), and over Gaussian weights clearly smaller."""
    from graphopt.passes.quantize_weights import _blocks, quantize_symmetric

    w = np.random.default_rng(0).standard_normal((64, 256)).astype(np.float32)
    q, scale = quantize_symmetric(w, 32, bits=4)
    blocks, _ = _blocks(w, 32)
    naive_s = np.abs(blocks).max(axis=2) / 7
    naive = np.clip(np.rint(blocks / naive_s[:, :, None]), -7, 7) * naive_s[:, :, None]
    naive_err = ((naive - blocks) ** 2).sum(axis=2)
    err = ((q.reshape(blocks.shape) * scale[:, :, None] - blocks) ** 2).sum(axis=2)
    assert np.all(err <= naive_err * (1 + 1e-5))
    assert err.sum() < 0.9 * naive_err.sum()
