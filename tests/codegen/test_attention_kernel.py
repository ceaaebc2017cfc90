"""graphopt's CPU attention kernel (codegen/kernels/attention.py) against numpy (float64
softmax), both its variants (vectors over query rows, vectors over keys) on every case, and
the lowering's benefit rule (codegen/lower/attention.py) choosing it or the in-place ops.

Tolerance: rtol 1e-5, atol 1e-5 (float32 accumulation over at most a few hundred keys,
the polynomial exp within a few float32 ulps); NaN where numpy gives NaN, nowhere else.
"""

from __future__ import annotations

import numpy as np
import pytest

from graphopt.codegen.kernels.attention import AttentionShape, attention_kernel
from graphopt.codegen.kernels.tags import ATTENTION
from graphopt.ir import DType, Graph, TensorType
from graphopt.ir.function import DOMAIN
from graphopt.ops import build

RTOL = ATOL = 1e-5


def numpy_attention(q, k, v, mask=None, scale=0.0, is_causal=False, zero_nan_rows=False):
    """The op's definition in float64: repeated K/V heads, the causal mask bottom-right."""
    rep = q.shape[1] // k.shape[1]
    k, v = np.repeat(k, rep, axis=1).astype(np.float64), np.repeat(v, rep, axis=1).astype(np.float64)
    s = q.astype(np.float64) @ np.swapaxes(k, -1, -2) * (scale or 1 / np.sqrt(q.shape[-1]))
    if is_causal:
        n, length = s.shape[-2:]
        s = s + np.where(np.arange(length)[None] <= np.arange(n)[:, None] + length - n, 0, -np.inf)
    if mask is not None:
        s = s + mask
    with np.errstate(invalid="ignore"):
        p = np.exp(s - s.max(-1, keepdims=True))
        p = p / p.sum(-1, keepdims=True)
    if zero_nan_rows:
        p = np.where(np.isnan(p), 0, p)
    return p @ v


def _data(b, hq, hkv, s, length, d, dv, mask_shape=None, seed=0, masked_cols=()):
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((b, hq, s, d)).astype(np.float32)
    k = rng.standard_normal((b, hkv, length, d)).astype(np.float32)
    v = rng.standard_normal((b, hkv, length, dv)).astype(np.float32)
    m = None
    if mask_shape is not None:
        m = np.where(rng.random(mask_shape) < 0.3, -np.inf, rng.standard_normal(mask_shape)).astype(np.float32)
        m[..., 0] = 0.0
        for c in masked_cols:
            m[..., c] = -np.inf
    return q, k, v, m


def _run_kernel(variant, b, hq, hkv, s, length, d, dv, causal=False, zero=False, mask_shape=None, scale=0.0,
                masked_cols=()):
    import tvm

    from graphopt.codegen.target import host_cpu

    q, k, v, m = _data(b, hq, hkv, s, length, d, dv, mask_shape, masked_cols=masked_cols)
    m4 = None if m is None else m.reshape((1,) * (4 - m.ndim) + m.shape)
    p = AttentionShape(b, hq, hkv, s, length, d, dv, scale or 1 / np.sqrt(d), causal, zero,
                       None if m4 is None else m4.shape)
    cpu = host_cpu()
    f = attention_kernel(p, cpu.vector_lanes, variant)
    ex = tvm.compile(tvm.IRModule({"main": f.with_attr("global_symbol", "main")}),
                     target=tvm.target.Target({"kind": "llvm", "mcpu": cpu.mcpu, "num-cores": cpu.cores}))
    y = np.full((b, hq, s, dv), 7.0, np.float32)  # garbage where the kernel fails to write
    args = [tvm.runtime.tensor(a) for a in [q, k, v] + ([m4] if m4 is not None else []) + [y]]
    ex["main"](*args)
    return args[-1].numpy(), numpy_attention(q, k, v, m, scale, causal, zero)


def _check(got, want):
    assert np.array_equal(np.isnan(got), np.isnan(want)), "NaN where numpy has none, or the other way"
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


CASES = {
    # name: (b, hq, hkv, s, length, d, dv), options
    "plain": ((1, 2, 2, 5, 7, 8, 8), {}),
    "causal": ((1, 2, 2, 40, 40, 16, 16), {"causal": True}),
    "kv-cache causal (S < L)": ((1, 2, 2, 9, 70, 8, 8), {"causal": True}),
    "causal S > L (rows that see nothing)": ((1, 2, 2, 8, 4, 8, 8), {"causal": True, "zero": True}),
    "mask [1,1,S,L]": ((2, 2, 2, 9, 37, 8, 8), {"mask_shape": (1, 1, 9, 37)}),
    "mask [B,1,1,L]": ((2, 4, 2, 9, 40, 8, 8), {"mask_shape": (2, 1, 1, 40), "causal": True}),
    "mask [S,L] per head [1,Hq,S,L]": ((1, 4, 4, 6, 33, 8, 8), {"mask_shape": (1, 4, 6, 33)}),
    "GQA": ((1, 8, 2, 11, 45, 16, 16), {"causal": True}),
    "MQA": ((1, 6, 1, 7, 33, 8, 8), {"mask_shape": (1, 1, 7, 33)}),
    "decode": ((2, 4, 4, 1, 70, 16, 16), {}),
    "GQA decode": ((1, 8, 2, 1, 70, 16, 16), {"causal": True}),
    "Dv != D, sizes off the blocks": ((1, 3, 1, 35, 67, 12, 20), {"causal": True, "scale": 0.3}),
}


@pytest.mark.parametrize("variant", ["rows", "keys"])
@pytest.mark.parametrize("name", list(CASES))
def test_kernel_matches_numpy(name, variant):
    shape, opts = CASES[name]
    _check(*_run_kernel(variant, *shape, **opts))


@pytest.mark.parametrize("variant", ["rows", "keys"])
@pytest.mark.parametrize("zero", [False, True])
def test_a_fully_masked_row_is_nan_or_zero(variant, zero):
    got, want = _run_kernel(variant, 1, 2, 2, 3, 5, 8, 8, zero=zero, mask_shape=(1, 1, 3, 5), masked_cols=range(5))
    _check(got, want)
    assert np.isnan(got).all() != zero and not (zero and np.isnan(got).any())


def test_nan_input_propagates():
    """A NaN key makes its rows NaN (softmax's sum is NaN), as numpy's; zero_nan_rows
    zeroes them, as the op's IsNaN/Where does."""
    import tvm

    from graphopt.codegen.target import host_cpu

    q, k, v, _ = _data(1, 2, 2, 4, 9, 8, 8)
    k[0, 1, 3, 2] = np.nan
    cpu = host_cpu()
    for zero in (False, True):
        p = AttentionShape(1, 2, 2, 4, 9, 8, 8, 1 / np.sqrt(8), False, zero, None)
        ex = tvm.compile(tvm.IRModule({"main": attention_kernel(p, cpu.vector_lanes).with_attr("global_symbol", "main")}),
                         target=tvm.target.Target({"kind": "llvm", "mcpu": cpu.mcpu, "num-cores": cpu.cores}))
        args = [tvm.runtime.tensor(a) for a in (q, k, v, np.zeros((1, 2, 4, 8), np.float32))]
        ex["main"](*args)
        _check(args[-1].numpy(), numpy_attention(q, k, v, zero_nan_rows=zero))


# --------------------------------------------------------------------------- the lowering

def _graph(b, hq, hkv, s, length, d, mask_shape=None, **attrs) -> Graph:
    g = Graph("g", {"": 21, DOMAIN: 1})
    f = DType.FLOAT32
    ins = [g.add_input("q", TensorType(f, (b, hq, s, d))), g.add_input("k", TensorType(f, (b, hkv, length, d))),
           g.add_input("v", TensorType(f, (b, hkv, length, d)))]
    if mask_shape is not None:
        ins.append(g.add_input("mask", TensorType(f, tuple(mask_shape))))
    g.outputs = [build(g, "Attention", ins, attrs, domain=DOMAIN).output]
    return g


def _compile_and_check(g, **attrs):
    from graphopt.compiler import compile_model

    m = compile_model(g, opt_level=None)
    rng = np.random.default_rng(1)
    x = {v.name: rng.standard_normal(v.type.shape).astype(np.float32) for v in g.inputs}
    _check(m(**x), numpy_attention(x["q"], x["k"], x["v"], x.get("mask"), **attrs))
    return m.report.kernel_names


def test_the_benefit_rule_picks_the_kernel_above_the_threshold_and_in_place_ops_below():
    from graphopt.codegen.lower import attention as la

    big = la.KERNEL_MIN_KEYS
    names = _compile_and_check(_graph(1, 2, 1, 1, big, 8, is_causal=1), is_causal=True)
    assert ATTENTION in names, names
    names = _compile_and_check(_graph(1, 2, 2, la.KERNEL_MIN_ROWS, la.KERNEL_MIN_ROWS, 8, is_causal=1), is_causal=True)
    assert ATTENTION in names, names
    names = _compile_and_check(_graph(1, 2, 2, 4, big - 1, 8), is_causal=False)
    assert ATTENTION not in names and any("softmax" in n for n in names), names
    # few rows and keys but many scores (a large batch of decode steps): the kernel, for the memory
    n = min(big, la.KERNEL_MIN_ROWS) - 1
    batch = -(-la.KERNEL_MIN_SCORE_BYTES // (n * n * 4))
    assert la.use_kernel(AttentionShape(batch, 1, 1, n, n, 64, 64, 0.125, True, False))
    assert not la.use_kernel(AttentionShape(1, 1, 1, n, n, 64, 64, 0.125, True, False))


def test_a_mask_of_fewer_dims_goes_to_the_kernel_as_a_view(monkeypatch):
    from graphopt.codegen.lower import attention as la

    monkeypatch.setattr(la, "KERNEL_MODE", "always")
    names = _compile_and_check(_graph(2, 4, 2, 3, 6, 8, mask_shape=(3, 6), is_causal=1), is_causal=True)
    assert ATTENTION in names, names


def test_symbolic_dims_keep_the_in_place_ops(monkeypatch):
    from graphopt.codegen.lower import attention as la

    monkeypatch.setattr(la, "KERNEL_MODE", "always")
    g = Graph("g", {"": 21, DOMAIN: 1})
    f = DType.FLOAT32
    q = g.add_input("q", TensorType(f, (1, 2, "S", 8)))
    k = g.add_input("k", TensorType(f, (1, 2, "L", 8)))
    v = g.add_input("v", TensorType(f, (1, 2, "L", 8)))
    g.outputs = [build(g, "Attention", [q, k, v], {}, domain=DOMAIN).output]
    from graphopt.compiler import compile_model

    m = compile_model(g, opt_level=None)
    assert ATTENTION not in m.report.kernel_names
    rng = np.random.default_rng(2)
    x = {"q": rng.standard_normal((1, 2, 3, 8)).astype(np.float32),
         "k": rng.standard_normal((1, 2, 5, 8)).astype(np.float32),
         "v": rng.standard_normal((1, 2, 5, 8)).astype(np.float32)}
    _check(m(**x), numpy_attention(x["q"], x["k"], x["v"]))
