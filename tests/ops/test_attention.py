"""graphopt.Attention: type inference and its errors, the reference decomposition (run by
onnxruntime) and the compiled lowering against exact numpy, grouped heads included."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graphopt
from graphopt.ir import DType, Graph, TensorData, TensorType
from graphopt.ir.function import DOMAIN
from graphopt.ops import InferError, build, get_schema
from graphopt.ops.flops import FlopSite
from graphopt.testing import run_reference
from graphopt.testing.settings import examples


def _graph(b=1, hq=4, hkv=2, s=3, length=5, d=8, dv=8, mask_shape=None, **attrs) -> Graph:
    g = Graph("g", {"": 21, DOMAIN: 1})
    f = DType.FLOAT32
    q = g.add_input("q", TensorType(f, (b, hq, s, d)))
    k = g.add_input("k", TensorType(f, (b, hkv, length, d)))
    v = g.add_input("v", TensorType(f, (b, hkv, length, dv)))
    ins = [q, k, v]
    if mask_shape is not None:
        ins.append(g.add_input("mask", TensorType(f, tuple(mask_shape))))
    g.outputs = [build(g, "Attention", ins, attrs, domain=DOMAIN).output]
    return g


def _inputs(g: Graph, seed=0, masked_cols=()) -> dict:
    rng = np.random.default_rng(seed)
    out = {v.name: rng.standard_normal(v.type.shape).astype(np.float32) for v in g.inputs}
    if "mask" in out:
        m = np.where(rng.random(out["mask"].shape) < 0.3, -np.inf, 0.0).astype(np.float32)
        m[..., 0] = 0.0  # every row keeps a key
        for c in masked_cols:
            m[..., c] = -np.inf
        out["mask"] = m
    return out


def numpy_attention(q, k, v, mask=None, scale=0.0, is_causal=0, zero_nan_rows=0):
    """The op's definition, in float64: repeated K/V heads, the causal mask bottom-right."""
    rep = q.shape[1] // k.shape[1]
    k, v = np.repeat(k, rep, axis=1).astype(np.float64), np.repeat(v, rep, axis=1).astype(np.float64)
    scale = scale or 1 / np.sqrt(q.shape[-1])
    s = q.astype(np.float64) @ np.swapaxes(k, -1, -2) * scale
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


def _check(g: Graph, inputs: dict, **attrs):
    want = numpy_attention(*[inputs[n] for n in ("q", "k", "v")], inputs.get("mask"), **attrs)
    ref = run_reference(g, inputs)[0]
    got = graphopt.optimize(g, opt_level=None)(**inputs)
    np.testing.assert_allclose(ref, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@settings(max_examples=min(examples(200), 25), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([(4, 4), (4, 2), (6, 1)]), st.integers(1, 4), st.integers(0, 3), st.booleans(),
       st.sampled_from([None, (1, 1, "S", "L"), ("S", "L"), (1, "H", "S", "L"), (1, 1, 1, "L")]),
       st.sampled_from([0.0, 0.3]))
def test_decomposition_and_lowering_match_numpy(heads, s, extra, causal, mask, scale):
    hq, hkv = heads
    length = s + extra
    mask_shape = None if mask is None else [{"S": s, "L": length, "H": hq}.get(d, d) for d in mask]
    g = _graph(hq=hq, hkv=hkv, s=s, length=length, mask_shape=mask_shape, scale=scale, is_causal=int(causal))
    _check(g, _inputs(g), scale=scale, is_causal=int(causal))


def test_a_fully_masked_row_gives_zeros_with_zero_nan_rows():
    g = _graph(hq=2, hkv=2, mask_shape=(1, 1, 3, 5), zero_nan_rows=1)
    inputs = _inputs(g, masked_cols=range(5))
    _check(g, inputs, zero_nan_rows=1)
    assert not np.isnan(run_reference(g, inputs)[0]).any()


def test_prints_and_parses_back():
    g = _graph(mask_shape=(1, 1, 3, 5), scale=0.25, is_causal=1)
    text = graphopt.print_ir(g)
    assert "graphopt.Attention(%q, %k, %v, %mask) {is_causal=1, scale=0.25" in text
    assert graphopt.print_ir(graphopt.parse_ir(text)) == text


@pytest.mark.parametrize("kw,error", [
    ({"hq": 3, "hkv": 2}, "Q has 3 heads, not a multiple of K's 2"),
    ({"d": 8, "dv": 8, "mask_shape": (1, 2, 3, 5)}, "the mask [1, 2, 3, 5] does not broadcast to the scores"),
    ({"is_causal": 2}, "is_causal must be 0 or 1, got 2"),
])
def test_bad_inputs_name_what_is_wrong(kw, error):
    with pytest.raises(InferError, match=error.replace("[", r"\[").replace("]", r"\]")):
        _graph(**kw)


def test_keys_and_values_must_agree():
    g = Graph("g", {"": 21, DOMAIN: 1})
    f = DType.FLOAT32
    q = g.add_input("q", TensorType(f, (1, 2, 3, 8)))
    k = g.add_input("k", TensorType(f, (1, 2, 5, 8)))
    v = g.add_input("v", TensorType(f, (1, 2, 4, 8)))
    with pytest.raises(InferError, match="K and V sequence length: 5 != 4"):
        build(g, "Attention", [q, k, v], domain=DOMAIN)


def test_flops_count_both_matmuls():
    g = _graph(b=1, hq=4, hkv=2, s=3, length=5, d=8, dv=8)
    rule = get_schema("Attention", DOMAIN).traits.flops
    assert rule(FlopSite(g.nodes[0], {})) == 4 * 3 * 5 * (2 * 8 + 2 * 8 + 5)


def test_constant_inputs_compile():
    g = _graph(hq=2, hkv=1)
    k = g.inputs[1]
    arr = np.random.default_rng(3).standard_normal(k.type.shape).astype(np.float32)
    c = g.add_constant("kc", TensorData.from_numpy(arr))
    g.replace_all_uses(k, c)
    g.remove_input(k)
    inputs = _inputs(g)
    want = numpy_attention(inputs["q"], arr, inputs["v"])
    np.testing.assert_allclose(graphopt.optimize(g, opt_level=None)(**inputs), want, rtol=1e-5, atol=1e-5)
