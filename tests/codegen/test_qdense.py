"""The quantized matmul kernels (kernels.qdense, kernels.q4dense): a MatMul/Gemm reading a
DequantizeLinear of int8/uint8 (or int4/uint4) constants compiles to one kernel that reads
the integers (no float copy of the weight among the parameters; 4-bit two a byte), and
matches onnxruntime running the same QDQ graph."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graphopt
from graphopt.ir import DType, Graph, TensorData, TensorType
from graphopt.ops import build
from graphopt.testing import assert_close, run_reference
from graphopt.testing.settings import examples

F32 = DType.FLOAT32


def qdq_linear(kind: str, M: int, K: int, N: int, block: int, zero_point: bool, seed: int = 0,
               bits: int = 8) -> Graph:
    """x [2, M, K] (MatMul) or [M, K] (Gemm) times DequantizeLinear(q, scale[, zero]) of a
    weight stored [K, N] (MatMul), [N, K] (Gemm transB, alpha 0.5, bias) or [N, K] read
    through a Transpose (a tied head); then a Relu. ``bits=4``: int4 (uint4 with a zero
    point) data."""
    rng = np.random.default_rng(seed)
    g = Graph("g", {"": 21})
    gemm = kind == "gemm"
    x = g.add_input("x", TensorType(F32, (M, K) if gemm else (2, M, K)))
    nk = kind != "matmul"          # stored [N, K]
    shape = (N, K) if nk else (K, N)
    dtype = {(8, False): DType.INT8, (8, True): DType.UINT8, (4, False): DType.INT4, (4, True): DType.UINT4}[
        (bits, zero_point)]
    lo, hi = dtype.int_range
    q = rng.integers(max(lo, -127), hi + 1, shape).astype(dtype.numpy)
    kaxis = 1 if nk else 0
    if block:
        sshape = list(shape)
        sshape[kaxis] = -(-K // block)
        axis = kaxis
    else:
        sshape, axis = [N], 1 - kaxis
    scale = rng.uniform(0.001, 0.02, sshape).astype(np.float32)
    ins = [g.add_constant("q", TensorData(q, dtype)), g.add_constant("s", TensorData.from_numpy(scale))]
    if zero_point:
        z = rng.integers(100, 156, sshape) if bits == 8 else rng.integers(4, 12, sshape)
        ins.append(g.add_constant("z", TensorData(z.astype(dtype.numpy), dtype)))
    attrs = {"axis": axis, **({"block_size": block} if block else {})}
    w = build(g, "DequantizeLinear", ins, attrs, name="dq").output
    if kind == "tied":
        w = build(g, "Transpose", [w], {"perm": [1, 0]}, name="wt").output
    if gemm:
        c = g.add_constant("c", TensorData.from_numpy(rng.standard_normal(N).astype(np.float32)))
        y = build(g, "Gemm", [x, w, c], {"transB": 1, "alpha": 0.5}, name="mm").output
    else:
        y = build(g, "MatMul", [x, w], name="mm").output
    g.outputs = [build(g, "Relu", [y], name="relu").output]
    return g


def _check(g: Graph, seed: int = 1):
    x = g.inputs[0]
    feeds = {x.name: np.random.default_rng(seed).standard_normal(x.type.shape).astype(np.float32)}
    expected = run_reference(g, feeds)  # onnxruntime runs the QDQ graph as it is
    compiled = graphopt.optimize(g)
    assert_close(expected, compiled.run(**feeds))
    return compiled


def _params(compiled):
    return [p.numpy() for p in compiled._stages[0].params]


@pytest.mark.parametrize("kind", ["matmul", "gemm", "tied"])
@pytest.mark.parametrize("block,zero_point", [(0, False), (32, False), (16, True), (0, True)])
def test_matches_onnxruntime_and_keeps_the_weight_integer(kind, block, zero_point):
    K, N = 96, 80
    compiled = _check(qdq_linear(kind, 5, K, N, block, zero_point))
    params = _params(compiled)
    ints = [p for p in params if p.dtype in (np.int8, np.uint8)]
    assert len(ints) == 1 and ints[0].size >= K * N, [(p.dtype, p.shape) for p in params]
    floats = sum(p.size for p in params if p.dtype == np.float32)
    assert floats < K * N / 4, "no float copy of the weight"
    assert any("gdense" in k for k in compiled.report.kernel_names), compiled.report.kernel_names


@pytest.mark.parametrize("kind", ["gemm", "tied"])
@pytest.mark.parametrize("block,zero_point", [(0, False), (32, True)])
def test_one_row_takes_a_wide_column_block(kind, block, zero_point):
    """A decode step's one row: the block of columns is 4 or 8 vectors wide (more FMA
    chains in flight), and the numbers stay the oracle's."""
    from graphopt.codegen.kernels.dense import column_block

    assert column_block(1024, rows=1)[0] > column_block(1024)[0]
    _check(qdq_linear(kind, 1, 96, 1024, block, zero_point))


def test_a_dequantized_weight_read_by_anything_else_is_computed():
    """The Add reads the float weight too: the DequantizeLinear is lowered (and folded by
    fold-constants, as nothing keeps it quantized), and the numbers are right."""
    g = qdq_linear("matmul", 4, 32, 32, 0, False)
    w = g.lookup("dq")
    g.outputs = list(g.outputs) + [build(g, "Add", [w, w], name="twice").output]
    x = g.inputs[0]
    feeds = {x.name: np.random.default_rng(0).standard_normal(x.type.shape).astype(np.float32)}
    assert_close(run_reference(g, feeds), graphopt.optimize(g).run(**feeds))


@settings(max_examples=examples(12), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["matmul", "gemm", "tied"]), st.integers(1, 9), st.integers(1, 70), st.integers(1, 70),
       st.sampled_from([0, 0, 16, 32]), st.booleans(), st.integers(0, 2 ** 16))
def test_random_shapes_match_onnxruntime(kind, M, K, N, block, zero_point, seed):
    if block and K <= block:
        block = 0  # a single block is the per-column form
    _check(qdq_linear(kind, M, K, N, block, zero_point, seed), seed)


@pytest.mark.parametrize("kind", ["matmul", "gemm", "tied"])
@pytest.mark.parametrize("M", [1, 5])
@pytest.mark.parametrize("block,zero_point", [(32, False), (16, True), (0, False)])
def test_int4_matches_onnxruntime_and_reads_half_a_byte_a_weight(kind, M, block, zero_point):
    """Both row tilings of the 4-bit kernel (a decode row, several rows); the weight's
    only integer parameter is the packed nibbles, K * N / 2 bytes (N padded to the kernel's
    column block)."""
    K, N = 96, 80
    compiled = _check(qdq_linear(kind, M, K, N, block, zero_point, bits=4))
    params = _params(compiled)
    ints = [p for p in params if p.dtype in (np.int8, np.uint8)]
    assert len(ints) == 1 and ints[0].dtype == np.uint8, [(p.dtype, p.shape) for p in params]
    assert K * N // 2 <= ints[0].size < K * N, ints[0].shape
    assert sum(p.size for p in params if p.dtype == np.float32) < K * N / 4, "no float copy of the weight"
    assert any("gq4dense" in k for k in compiled.report.kernel_names), compiled.report.kernel_names


def test_int4_with_odd_k_takes_the_general_form():
    """Odd K (the last byte half used) is the TE form's: same numbers, still packed."""
    compiled = _check(qdq_linear("matmul", 3, 45, 40, 0, False, bits=4))
    assert not any("gq4dense" in k for k in compiled.report.kernel_names)
    assert any("gdense" in k for k in compiled.report.kernel_names), compiled.report.kernel_names
    ints = [p for p in _params(compiled) if p.dtype == np.uint8]
    assert len(ints) == 1 and ints[0].size < 45 * 40


@settings(max_examples=examples(12), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["matmul", "gemm", "tied"]), st.integers(1, 9), st.integers(1, 35).map(lambda h: 2 * h),
       st.integers(1, 70), st.sampled_from([0, 16, 32]), st.booleans(), st.integers(0, 2 ** 16))
def test_int4_random_shapes_match_onnxruntime(kind, M, K, N, block, zero_point, seed):
    if block and K <= block:
        block = 0
    _check(qdq_linear(kind, M, K, N, block, zero_point, seed, bits=4), seed)


@pytest.mark.parametrize("dtype", [DType.INT4, DType.UINT4])
def test_quantize_dequantize_of_an_activation_in_4_bits_matches_onnxruntime(dtype):
    """The generic lowering: QuantizeLinear to int4/uint4 clips to the 4-bit range (held in
    a byte), blocked, with a zero point; DequantizeLinear reads it back."""
    rng = np.random.default_rng(2)
    g = Graph("g", {"": 21})
    x = g.add_input("x", TensorType(F32, (3, 64)))
    s = g.add_constant("s", TensorData.from_numpy(rng.uniform(0.05, 0.3, (3, 4)).astype(np.float32)))
    lo, hi = dtype.int_range
    z = g.add_constant("z", TensorData(rng.integers(lo, hi + 1, (3, 4)).astype(dtype.numpy), dtype))
    q = build(g, "QuantizeLinear", [x, s, z], {"axis": 1, "block_size": 16}, name="q").output
    assert q.type.dtype is dtype
    g.outputs = [build(g, "DequantizeLinear", [q, s, z], {"axis": 1, "block_size": 16}, name="dq").output]
    feeds = {"x": (3 * rng.standard_normal((3, 64))).astype(np.float32)}  # many values clip
    np.testing.assert_array_equal(np.asarray(run_reference(g, feeds)[0]), graphopt.optimize(g).run(**feeds)[0])
