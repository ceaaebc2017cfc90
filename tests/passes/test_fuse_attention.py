"""fuse-attention: scaled dot-product attention as exporters write it (sdpa's split scale
and flattened K^T, eager's Div and Where masks, repeat_kv for grouped heads) becomes one
graphopt.Attention; numbers stay the oracle's; other shapes stay as they are and say why;
transformers' models fuse every layer and still match torch."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graphopt
from graphopt.ir import DType, Graph, TensorData, TensorType
from graphopt.ops import build

from passes_testutil import N_EXAMPLES, run_checked

F = DType.FLOAT32
MIN = float(np.finfo(np.float32).min)


def _c(g: Graph, a, dt=np.float32):
    return g.add_constant(g.fresh_name("c"), TensorData.from_numpy(np.asarray(a, dt)))


def _causal(s, length):
    return np.arange(length)[None] <= np.arange(s)[:, None] + (length - s)


def attn_graph(kt_form="flatten", scale="split", mask="none", nan_where=True, hq=4, hkv=4, s=3, length=5, d=8,
               softmax_axis=-1, share_scores=False, swap_add=False) -> Graph:
    """softmax(q K^T * scale + mask) V with K^T as ``kt_form`` ("transpose", "flatten", "bshd"
    for keys [B, L, H, D] transposed by perm [0, 2, 3, 1], "input" for a K^T given as is),
    grouped heads by repeat_kv when hkv < hq, the scale as ``scale`` ("split" on q and K^T,
    "div", "mul", "none"), and ``mask`` "none", "input" (additive), "causal" (a constant),
    "where" (Where(causal, scores, min)), "where-input" (a bool input), "pad" (a constant that
    is not causal), "bias+causal" and "bias+pad" (T5's decoder: an input bias added, then the
    constant)."""
    g = Graph("g", {"": 21})
    rep = hq // hkv
    q = g.add_input("q", TensorType(F, (1, hq, s, d)))
    kshape = {"bshd": (1, length, hkv, d), "input": (1, hq, d, length)}.get(kt_form, (1, hkv, length, d))
    k = g.add_input("k", TensorType(F, kshape))
    v = g.add_input("v", TensorType(F, (1, hkv, length, d)))

    def repeat(x):
        if rep == 1:
            return x
        u = build(g, "Unsqueeze", [x, _c(g, [2], np.int64)]).output
        e = build(g, "Expand", [u, _c(g, [1, hkv, rep, length, d], np.int64)]).output
        return build(g, "Reshape", [e, _c(g, [1, hq, length, d], np.int64)]).output

    if kt_form == "transpose":
        kt = build(g, "Transpose", [repeat(k)], {"perm": [0, 1, 3, 2]}).output
    elif kt_form == "flatten":
        flat = build(g, "Reshape", [repeat(k), _c(g, [-1, length, d], np.int64)]).output
        kt = build(g, "Reshape", [build(g, "Transpose", [flat], {"perm": [0, 2, 1]}).output,
                                  _c(g, [1, hq, d, length], np.int64)]).output
    elif kt_form == "bshd":
        kt = build(g, "Transpose", [k], {"perm": [0, 2, 3, 1]}).output
    else:
        kt = k
    if scale == "split":
        c = _c(g, d ** -0.25)
        q = build(g, "Mul", [q, c]).output
        kt = build(g, "Mul", [kt, c]).output
    scores = build(g, "MatMul", [q, kt]).output
    if scale == "div":
        scores = build(g, "Div", [scores, _c(g, np.sqrt(d))]).output
    elif scale == "mul":
        scores = build(g, "Mul", [_c(g, 1 / np.sqrt(d)), scores]).output
    if mask.startswith("bias+"):
        b = g.add_input("bias", TensorType(F, (1, hq, s, length)))
        scores = build(g, "Add", [scores, b]).output
        mask = mask.removeprefix("bias+")
    if mask == "input":
        m = g.add_input("mask", TensorType(F, (1, 1, s, length)))
        scores = build(g, "Add", [m, scores] if swap_add else [scores, m]).output
    elif mask == "causal":
        scores = build(g, "Add", [scores, _c(g, np.where(_causal(s, length), 0, MIN)[None, None])]).output
    elif mask == "pad":
        pad = np.zeros((1, 1, 1, length), np.float32)
        pad[..., -1] = -np.inf
        scores = build(g, "Add", [scores, _c(g, pad)]).output
    elif mask in ("where", "where-input"):
        keep = (_c(g, _causal(s, length)[None, None], np.bool_) if mask == "where"
                else g.add_input("keep", TensorType(DType.BOOL, (1, 1, s, length))))
        scores = build(g, "Where", [keep, scores, _c(g, MIN)]).output
    p = build(g, "Softmax", [scores], {"axis": softmax_axis}).output
    if nan_where:
        p = build(g, "Where", [build(g, "IsNaN", [p]).output, _c(g, 0.0), p]).output
    g.outputs = [build(g, "MatMul", [p, repeat(v)]).output] + ([scores] if share_scores else [])
    return g


def _inputs(g: Graph, seed=1) -> dict:
    rng = np.random.default_rng(seed)
    out = {}
    for v in g.inputs:
        if v.type.dtype is DType.BOOL:
            out[v.name] = _causal(*v.type.shape[2:])[None, None].copy()
        elif v.name == "mask":
            m = np.where(rng.random(v.type.shape) < 0.3, -np.inf, 0).astype(np.float32)
            m[..., 0] = 0
            out[v.name] = m
        else:
            out[v.name] = rng.standard_normal(v.type.shape).astype(np.float32)
    return out


def _fused(g: Graph):
    return [n for n in g.nodes if n.qualified_op == "graphopt.Attention"]


@settings(max_examples=min(N_EXAMPLES, 60), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["transpose", "flatten", "bshd"]), st.sampled_from(["split", "div", "mul", "none"]),
       st.sampled_from(["none", "input", "causal", "where", "pad", "bias+causal", "bias+pad"]), st.booleans(),
       st.sampled_from([(4, 4), (4, 2), (4, 1)]), st.booleans(), st.integers(1, 4))
def test_every_form_becomes_one_attention(kt_form, scale, mask, nan_where, heads, swap_add, s):
    hq, hkv = heads
    if kt_form == "bshd":
        hkv = hq
    g = attn_graph(kt_form, scale, mask, nan_where, hq=hq, hkv=hkv, s=s, length=s + 2, swap_add=swap_add)
    run_checked(g, ["fuse-attention", "dce"], _inputs(g))
    ops = [n.qualified_op for n in g.nodes if n.qualified_op != "Add"]  # bias+pad sums its two masks
    assert ops == (["Transpose"] if kt_form == "bshd" else []) + ["graphopt.Attention"], ops
    assert sum(n.op_type == "Add" for n in g.nodes) == int(mask == "bias+pad")
    a = _fused(g)[0]
    assert a.attrs["scale"].value == pytest.approx(1 / np.sqrt(8), rel=1e-6) if scale != "none" else \
        a.attrs["scale"].value == 1.0
    # a causal mask over one query row (of L >= 1 keys) masks nothing: no mask at all
    assert a.attrs["is_causal"].value == int(mask in ("causal", "where", "bias+causal") and s > 1)
    assert a.attrs["zero_nan_rows"].value == int(nan_where)
    assert len(a.inputs) == (4 if mask in ("input", "pad", "bias+causal", "bias+pad") else 3)
    if mask == "bias+causal" and s > 1:
        assert a.inputs[3].name == "bias"  # the causal constant became is_causal: the bias alone is the mask
    assert a.inputs[1].type.shape[1] == hkv  # the un-repeated heads
    assert a.provenance.rule == "fuse-attention.sdpa"
    text = graphopt.print_ir(g)
    assert graphopt.print_ir(graphopt.parse_ir(text)) == text


@pytest.mark.parametrize("kw,reason", [
    ({"softmax_axis": 2}, "softmax over axis 2, not the keys"),
    ({"share_scores": True, "mask": "input"}, "is also a graph output"),
    ({"mask": "where-input"}, "the Where mask %keep is not a constant bool tensor"),
    ({"kt_form": "input"}, "K^T %k comes from outside, not a transpose of K"),
])
def test_unchanged_with_the_reason(kw, reason):
    g = attn_graph(**kw)
    before = graphopt.print_ir(g)
    run = run_checked(g, ["fuse-attention"], _inputs(g))
    assert not any(r.changed for r in run.records) and graphopt.print_ir(g) == before
    out = io.StringIO()
    graphopt.run_passes(g, ["fuse-attention"], explain=out)
    assert reason in out.getvalue(), out.getvalue()


def test_a_wrong_flattening_is_not_taken_for_keys():
    from graphopt.ir import Value

    from graphopt.passes.attention_views import keys_of

    g = attn_graph("flatten", scale="none")
    kt: Value = next(n for n in g.nodes if n.op_type == "MatMul").inputs[1]
    assert keys_of(kt).value.name == "k"  # the right chain is seen through
    g2 = Graph("g", {"": 21})
    x = g2.add_input("x", TensorType(F, (1, 4, 8, 5)))  # [B, H, D, L] already: no flattening of [L, D]
    flat = build(g2, "Reshape", [x, _c(g2, [4, 8, 5], np.int64)]).output
    kt2 = build(g2, "Reshape", [build(g2, "Transpose", [flat], {"perm": [0, 2, 1]}).output,
                                _c(g2, [1, 4, 8, 5], np.int64)]).output
    assert "flattened" in keys_of(kt2)


def _compare(model, args, rtol=1e-4, atol=1e-5):
    import torch

    g = graphopt.run_passes(graphopt.trace(model, args), "O2", check_numerics=True)
    got = graphopt.optimize(g, opt_level=None)(*[a.numpy() for a in args])
    with torch.no_grad():
        out = model(*args)
    want = out.logits if hasattr(out, "logits") else out.last_hidden_state
    np.testing.assert_allclose(got[0] if isinstance(got, (list, tuple)) else got, want.numpy(), rtol=rtol, atol=atol)
    return g


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
def test_llama_with_grouped_heads_fuses_every_layer_and_matches_torch(impl):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, vocab_size=1000, attn_implementation=impl)
    m = LlamaForCausalLM(cfg).eval()
    m.config.use_cache = False
    g = _compare(m, (torch.randint(0, 1000, (1, 8)),))
    fused = _fused(g)
    assert len(fused) == 2 and all(a.inputs[1].type.shape[1] == 2 for a in fused)  # K/V heads not repeated
    assert all(a.attrs["is_causal"].value == 1 and len(a.inputs) == 3 for a in fused)
    assert not any(n.op_type in ("Softmax", "Expand") for n in g.nodes)


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
def test_bert_with_a_padding_mask_fuses_and_matches_torch(impl):
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    cfg = BertConfig(num_hidden_layers=2, hidden_size=64, num_attention_heads=2, intermediate_size=128,
                     vocab_size=1000, attn_implementation=impl)
    m = BertModel(cfg).eval()
    ids = torch.randint(0, 1000, (2, 8))
    am = torch.ones(2, 8, dtype=torch.long)
    am[1, 5:] = 0
    g = _compare(m, (ids, am))
    fused = _fused(g)
    assert len(fused) == 2 and all(len(a.inputs) == 4 for a in fused)  # the mask is computed from the input


def test_gpt2_decode_step_fuses_over_the_cache():
    import torch

    from graphopt.bench.cases import build_gpt2_decode

    step, (nxt, keys, values) = build_gpt2_decode(past=6, small=True)
    flat = (nxt, *keys, *values)

    class Flat(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.step = step

        def forward(self, nxt, *kv):
            n = len(kv) // 2
            return self.step(nxt, list(kv[:n]), list(kv[n:]))

    m = Flat().eval()
    g = graphopt.run_passes(graphopt.trace(m, flat), "O2", check_numerics=True)
    fused = _fused(g)
    assert len(fused) == 2 and all(a.inputs[1].type.shape[2] == 7 for a in fused)  # 6 past + 1 new key
    got = graphopt.optimize(g, opt_level=None)(*[a.numpy() for a in flat])
    with torch.no_grad():
        want = m(*flat)
    np.testing.assert_allclose(got[0], want[0].numpy(), rtol=1e-4, atol=1e-5)
