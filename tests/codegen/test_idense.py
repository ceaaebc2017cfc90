"""The integer matmul kernel (kernels.idense) and DynamicQuantizeLinear.

DynamicQuantizeLinear's integers equal onnxruntime's. A MatMul/Gemm of a run-time
quantized activation and an int8 weight compiles to the integer kernel (one quantize
kernel and one integer kernel, no float copy of the activation or the weight) and equals
exact numpy arithmetic on the same integers: the int32 sums exactly, the float output
within float32 rounding of the scales. MatMulInteger with a constant B is the int32 sum
itself, against the oracle's exact numpy (onnxruntime's AVX2 kernel saturates)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graphopt
from graphopt.codegen.target import host_cpu
from graphopt.ir import DType, Graph, TensorData, TensorType
from graphopt.ops import build
from graphopt.testing import assert_close, run_reference
from graphopt.testing.settings import examples

F32 = DType.FLOAT32
AVX2 = "avx2" in host_cpu().features


def _dql_graph(shape) -> Graph:
    g = Graph("g", {"": 21})
    x = g.add_input("x", TensorType(F32, shape))
    g.outputs = list(build(g, "DynamicQuantizeLinear", [x], name="dql").outputs)
    return g


@pytest.mark.parametrize("values", ["normal", "zeros", "positive", "negative", "ties"])
def test_dynamic_quantize_linear_equals_onnxruntime(values):
    rng = np.random.default_rng(0)
    x = {"normal": rng.standard_normal((3, 50)), "zeros": np.zeros((3, 50)),
         "positive": rng.uniform(1, 3, (3, 50)), "negative": -rng.uniform(1, 3, (3, 50)),
         # range [0, 255]: scale 1, so x.5 is a tie that must go to the even integer
         "ties": np.concatenate([[0.0, 255.0], np.arange(148) + 0.5]).reshape(3, 50)}[values].astype(np.float32)
    g = _dql_graph(x.shape)
    expected = run_reference(g, {"x": x})
    got = graphopt.optimize(g).run(x=x)
    for e, o in zip(expected, got):
        np.testing.assert_array_equal(np.asarray(e), np.asarray(o))


def qdq_matmul(kind: str, M: int, K: int, N: int, block: int, seed: int = 0, weight_zero: bool = False):
    """x [2, M, K] (MatMul) or [M, K] (Gemm, transB, alpha 0.5, bias) through
    DynamicQuantizeLinear + DequantizeLinear, times a DequantizeLinear of int8 constants
    (per column, or blocks along K; uint8 with a zero point with ``weight_zero``). Returns
    the graph and the weight's (q [N, K] int, scale [N, blocks], zero)."""
    rng = np.random.default_rng(seed)
    g = Graph("g", {"": 21})
    gemm = kind == "gemm"
    x = g.add_input("x", TensorType(F32, (M, K) if gemm else (2, M, K)))
    dql = build(g, "DynamicQuantizeLinear", [x], name="dql")
    a = build(g, "DequantizeLinear", list(dql.outputs), name="xdq").output
    nb = -(-K // block) if block else 1
    if weight_zero:
        q_nk = rng.integers(60, 190, (N, K)).astype(np.uint8)
        z_nk = rng.integers(120, 136, (N, nb)).astype(np.uint8)
    else:
        q_nk = rng.integers(-127, 128, (N, K)).astype(np.int8)
        z_nk = None
    s_nk = rng.uniform(0.001, 0.02, (N, nb)).astype(np.float32)
    # stored [K, N] for MatMul (axis 1 per column, blocks on axis 0), [N, K] for Gemm transB
    q, s, z = (q_nk, s_nk, z_nk) if gemm else (q_nk.T, s_nk.T, None if z_nk is None else z_nk.T)
    if not block:
        s, z = s.reshape(-1), None if z is None else z.reshape(-1)
        attrs = {"axis": 0 if gemm else 1}
    else:
        attrs = {"axis": 1 if gemm else 0, "block_size": block}
    ins = [g.add_constant("q", TensorData.from_numpy(np.ascontiguousarray(q))),
           g.add_constant("s", TensorData.from_numpy(np.ascontiguousarray(s)))]
    if z is not None:
        ins.append(g.add_constant("z", TensorData.from_numpy(np.ascontiguousarray(z))))
    w = build(g, "DequantizeLinear", ins, attrs, name="wdq").output
    if gemm:
        c = g.add_constant("c", TensorData.from_numpy(rng.standard_normal(N).astype(np.float32)))
        y = build(g, "Gemm", [a, w, c], {"transB": 1, "alpha": 0.5}, name="mm").output
    else:
        y = build(g, "MatMul", [a, w], name="mm").output
    g.outputs = [y]
    return g, (q_nk, s_nk, z_nk)


def exact(g: Graph, x: np.ndarray, weight, block: int) -> np.ndarray:
    """numpy: the activation's integers from onnxruntime's DynamicQuantizeLinear, the sums
    in int64 (exact), scaled in float64."""
    q_nk, s_nk, z_nk = weight
    xg = _dql_graph(x.shape)
    xq, xs, xz = (np.asarray(v) for v in run_reference(xg, {"x": x}))
    a = xq.astype(np.int64).reshape(-1, x.shape[-1]) - int(xz)
    N, K = q_nk.shape
    b = block or K
    zk = 0 if z_nk is None else np.repeat(z_nk.astype(np.int64), b, axis=1)[:, :K]
    w = q_nk.astype(np.int64) - zk
    y = np.zeros((a.shape[0], N))
    for j in range(0, K, b):
        y += (a[:, j:j + b] @ w[:, j:j + b].T).astype(np.float64) * s_nk[:, j // b].astype(np.float64)
    y *= float(xs)
    mm = next(n for n in g.nodes if n.name == "mm")
    if mm.op_type == "Gemm":
        y = 0.5 * y + g.lookup("c").const.numpy()
    return y.reshape(x.shape[:-1] + (N,))


@pytest.mark.skipif(not AVX2, reason="the integer kernel needs AVX2")
@pytest.mark.parametrize("kind", ["matmul", "gemm"])
@pytest.mark.parametrize("M,K,N,block,weight_zero", [
    (5, 96, 80, 0, False),      # rows past a tile of 4, a column tail
    (1, 64, 24, 32, False),     # a decode row, blocks
    (7, 99, 13, 0, False),      # odd K: the last pair is half padding
    (3, 100, 40, 16, True),     # blocks with zero points (less the zero point: int8)
])
def test_dynamic_matmul_is_the_integer_kernel_and_exact(kind, M, K, N, block, weight_zero):
    g, weight = qdq_matmul(kind, M, K, N, block, weight_zero=weight_zero)
    x = np.random.default_rng(1).standard_normal(g.inputs[0].type.shape).astype(np.float32)
    compiled = graphopt.optimize(g)
    got = np.asarray(compiled.run(x=x)[0])
    want = exact(g, x, weight, block)
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=2e-6 * np.abs(want).max())
    assert_close(run_reference(g, {"x": x}), [got])  # and onnxruntime's float QDQ, within its tolerance
    names = compiled.report.kernel_names
    assert "gidense" in names and "giquant" in names, names
    params = [p.numpy() for p in compiled._stages[0].params]
    assert sum(p.size for p in params if p.dtype == np.float32) < K * N / 4, "no float copy of the weight"


@pytest.mark.skipif(not AVX2, reason="the integer kernel needs AVX2")
def test_a_float_reader_of_the_activation_keeps_it_correct():
    """The dequantized activation also goes out of the graph: it is computed (not deferred)
    and the matmul still takes the kernel."""
    g, weight = qdq_matmul("matmul", 4, 64, 32, 0)
    g.outputs = list(g.outputs) + [next(n for n in g.nodes if n.name == "xdq").output]
    x = np.random.default_rng(2).standard_normal(g.inputs[0].type.shape).astype(np.float32)
    compiled = graphopt.optimize(g)
    assert_close(run_reference(g, {"x": x}), compiled.run(x=x))


def matmul_integer(M: int, K: int, N: int, zero_b: str, seed: int = 0) -> Graph:
    rng = np.random.default_rng(seed)
    g = Graph("g", {"": 21})
    a = g.add_input("a", TensorType(DType.UINT8, (2, M, K)))
    b = g.add_constant("b", TensorData.from_numpy(rng.integers(-128, 128, (K, N)).astype(np.int8)))
    ins = [a, b, g.add_constant("az", TensorData.from_numpy(np.uint8(131)))]
    if zero_b == "scalar":
        ins.append(g.add_constant("bz", TensorData.from_numpy(np.int8(0))))
    g.outputs = [build(g, "MatMulInteger", ins, name="mmi").output]
    return g


@pytest.mark.skipif(not AVX2, reason="the integer kernel needs AVX2")
@pytest.mark.parametrize("zero_b", ["none", "scalar"])
def test_matmul_integer_is_exact_where_onnxruntime_saturates(zero_b):
    # u8 255 x s8 -128: pairs that vpmaddubsw would saturate in int16
    g = matmul_integer(3, 70, 20, zero_b)
    a = np.random.default_rng(3).integers(0, 256, (2, 3, 70)).astype(np.uint8)
    a[0, 0, :] = 255
    compiled = graphopt.optimize(g)
    got = np.asarray(compiled.run(a=a)[0])
    want = (a.astype(np.int64) - 131) @ g.lookup("b").const.numpy().astype(np.int64)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got, np.asarray(run_reference(g, {"a": a})[0]))  # the oracle is numpy here
    assert "gidense" in compiled.report.kernel_names


@pytest.mark.skipif(not AVX2, reason="the integer kernel needs AVX2")
@settings(max_examples=examples(8), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(M=st.integers(1, 9), K=st.integers(2, 80), N=st.integers(1, 40), block=st.sampled_from([0, 2, 8, 32]),
       seed=st.integers(0, 2**16))
def test_hypothesis_shapes_match_exact_arithmetic(M, K, N, block, seed):
    g, weight = qdq_matmul("matmul", M, K, N, block, seed=seed)
    x = np.random.default_rng(seed).standard_normal(g.inputs[0].type.shape).astype(np.float32)
    got = np.asarray(graphopt.optimize(g).run(x=x)[0])
    want = exact(g, x, weight, block)
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=2e-6 * max(np.abs(want).max(), 1e-30))
