"""Fuse scaled dot-product attention into ``graphopt.Attention``.

    softmax((q*a) @ (K^T*b) * c / d [masked] + mask) @ V  = Attention(q, K, V, mask, scale=a*b*c/d)
    Where(IsNaN(P), 0, P) for the softmax P                = the same, zero_nan_rows=1

What transformers' models export (torch.onnx, dynamo): scaled_dot_product_attention splits
the scale as sqrt(scale) on q and on K^T, adds the mask, and zeroes NaN rows; the eager
implementations divide or multiply the scores, mask causally with Where(causal, scores,
min) and add the padding mask; T5's decoder adds its position bias and then the causal mask
(two Adds, summed into one mask, the causal part taken out as ``is_causal``). K^T and V come through view chains (see attention_views:
the transposes, and repeat_kv for grouped-query attention, whose repeated copies the fused
op never makes). A constant mask that is the causal one becomes ``is_causal=1``; an all-zero
one disappears; a constant Where mask becomes additive (0 where kept, its fill elsewhere).
Scores of rank 4 and float32/float64 only (16-bit models soften in float32 between Casts,
a form left for later); the K/V cache's Concat stays where it is (L counts it). Rounds
within float tolerance (the scale applies once to the scores). In -O2.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from graphopt.ir import DType, Graph
from graphopt.ir.function import DOMAIN
from graphopt.ops.defs.attention import ATTENTION, causal_mask
from graphopt.pipeline.base import Pass, PassContext, register_pass
from graphopt.rewrite import Const, Maybe, Op, RuleSet, Var, apply_rules

from .attention_views import keys_of, values_of

rules = RuleSet("fuse-attention")


def _scalar(a: np.ndarray) -> Optional[str]:
    return None if a.size == 1 and a.dtype.kind == "f" else f"is {list(a.shape)} of {a.dtype}, not a float scalar"


def _zero(a: np.ndarray) -> Optional[str]:
    return None if a.size == 1 and float(a.reshape(-1)[0]) == 0.0 else "is not 0"


QK = Op("MatMul", Maybe(Op("Mul", Var("q"), Const("cq", _scalar))), Maybe(Op("Mul", Var("kt"), Const("ck", _scalar))),
        name="qk")
SCALED = Maybe(Op("Div", Maybe(Op("Mul", QK, Const("cs", _scalar))), Const("cd", _scalar)))
WHERE_MASKED = Maybe(Op("Where", Var("keep"), SCALED, Const("fill", _scalar)), through=1)
# T5's decoder adds its relative position bias and then the causal mask: (s + a) + b = s + (a + b)
MASKED = Maybe(Op("Add", Maybe(Op("Add", WHERE_MASKED, Var("mask2"))), Var("mask")))
SOFTMAX = Op("Softmax", MASKED, name="sm", axis=lambda a: None if a in (-1, 3) else f"softmax over axis {a}, not the keys")
PROBS = Maybe(Op("Where", Op("IsNaN", SOFTMAX), Const("zero", _zero), SOFTMAX), through=2)
ATTN = Op("MatMul", PROBS, Var("v"), name="out")

_FLOATS = (DType.FLOAT32, DType.FLOAT64)
_MASKED = -1e30  # a mask entry at or below this removes its key (torch fills with finfo.min or -inf)


def _product(m) -> float:
    s = 1.0
    for c in ("cq", "ck", "cs"):
        if m.get(c) is not None:
            s *= float(m.array(c).reshape(-1)[0])
    if m.get("cd") is not None:
        s /= float(m.array("cd").reshape(-1)[0])
    return s


def _heads(m) -> tuple:
    """(keys, values) Heads of the match, or (reason, None)."""
    k = keys_of(m.kt)
    if isinstance(k, str):
        return k, None
    return k, values_of(m.v)


def _fits(m) -> Optional[str]:
    q, qk, out = m.q, m.qk.outputs[0], m.out.outputs[0]
    if q.type.dtype not in _FLOATS:
        return f"the queries %{q.name} are {q.type.dtype.short}, not float32/float64"
    qs, ss = q.type.shape, qk.type.shape
    if qs is None or len(qs) != 4 or not all(isinstance(d, int) for d in qs[1:]):
        return f"the queries %{q.name} are not [B, H, S, D] with known heads and sizes"
    if ss is None or len(ss) != 4:
        return f"the scores %{qk.name} are not 4-D"
    k, v = _heads(m)
    if isinstance(k, str):
        return k
    ks = list(k.value.type.shape or ())
    if k.transpose and len(ks) == 4:
        ks = [ks[0], ks[2], ks[1], ks[3]]
    vs = list(v.value.type.shape or ())
    if len(ks) != 4 or len(vs) != 4:
        return f"the keys %{k.value.name} or values %{v.value.name} are not 4-D heads"
    hq = qs[1]
    for name, h, rep in (("keys", ks[1], k.rep), ("values", vs[1], v.rep)):
        if not isinstance(h, int) or h * rep != hq:
            return f"the {name} have {h} heads repeated {rep} times for {hq} query heads"
    if ks[1] != vs[1]:
        return f"the keys have {ks[1]} heads, the values {vs[1]}"
    if ks[3] != qs[3] or ks[2] != ss[3] or vs[2] != ss[3]:
        return f"the keys {ks} and values {vs} do not fit the queries {list(qs)} and scores {list(ss)}"
    if list(out.type.shape or ()) != [qs[0], hq, qs[2], vs[3]]:
        return f"the output %{out.name} is {list(out.type.shape or ())}, not [B, Hq, S, Dv]"
    keep = m.get("keep")
    for mask in _terms(m):
        if mask.type.dtype is not q.type.dtype or mask.type.shape is None or len(mask.type.shape) > 4:
            return f"the mask %{mask.name} is not an additive {q.type.dtype.short} mask of rank <= 4"
    if keep is not None:
        if keep.type.dtype is not DType.BOOL or keep.const is None or keep.const.is_elided:
            return f"the Where mask %{keep.name} is not a constant bool tensor"
        if len(keep.type.shape) > 4:
            return f"the Where mask %{keep.name} has rank {len(keep.type.shape)}"
    return None


def _terms(m) -> list:
    """The additive masks the scores get, in the order they are added."""
    return [x for x in (m.get("mask2"), m.get("mask")) if x is not None]


def _mask_input(rw, m, s: int, length: int):
    """(the additive mask input or None, is_causal): the constant terms (the Where mask as
    0/fill, constant additive masks) summed, the causal one taken out as ``is_causal``, and
    the others added to what remains."""
    keep = m.get("keep")
    dt = m.q.type.dtype.numpy
    const = None
    if keep is not None:
        fill = m.array("fill").reshape(-1)[0]
        const = np.where(keep.const.numpy(), 0, fill).astype(dt)
    dynamic = []
    for mask in _terms(m):
        mc = mask.const.numpy() if mask.const is not None and not mask.const.is_elided else None
        if mc is None:
            dynamic.append(mask)
        else:
            const = mc if const is None else (mc.astype(dt) + const).astype(dt)
    causal = 0
    if const is not None and not const.any():
        const = None
    if const is not None:
        c = const
        while c.ndim > 2 and c.shape[0] == 1:
            c = c[0]
        if c.shape == (s, length):
            want = np.isfinite(causal_mask(s, length, np.float64))
            if np.array_equal(c == 0, want) and np.all(c[~want] <= _MASKED):
                const, causal = None, 1
            else:
                const = c
    if len(dynamic) == 1 and const is None:
        return dynamic[0], causal
    # the graph's own constant when it is the whole mask (no new initializer)
    only = [x for x in _terms(m) if x.const is not None and not x.const.is_elided]
    terms = list(dynamic)
    if const is not None:
        terms.append(only[0] if keep is None and len(only) == 1 and not dynamic else rw.const(const, hint="attention_mask"))
    if not terms:
        return None, causal
    out = terms[0]
    for t in terms[1:]:
        out = rw.op("Add", [out, t]).output
    return out, causal


def _fuse(rw, m):
    rw.graph.root.opset_imports.setdefault(DOMAIN, 1)
    k, v = _heads(m)
    kv = k.value
    if k.transpose:
        kv = rw.op("Transpose", [kv], {"perm": [0, 2, 1, 3]}).output
    s, length = m.qk.outputs[0].type.shape[2:]
    mask, causal = _mask_input(rw, m, s, length)
    attrs = {"scale": _product(m), "is_causal": causal, "zero_nan_rows": int(m.get("zero") is not None)}
    return rw.op(ATTENTION, [m.q, kv, v.value] + ([mask] if mask is not None else []), attrs, domain=DOMAIN,
                 name=m.out.name).output


rules.add("sdpa", "softmax(q K^T * scale + mask) V -> Attention(q, K, V, mask, scale)", ATTN, _fuse, where=_fits)


@register_pass
@dataclass
class FuseAttention(Pass):
    name = "fuse-attention"
    summary = "fuse scaled dot-product attention (scale, masks, grouped K/V heads) into graphopt.Attention"

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        return apply_rules(graph, ctx, rules.rules)

