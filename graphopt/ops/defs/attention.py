"""``graphopt.Attention``: scaled dot-product attention over 4-D heads, the op transformers'
attention blocks fuse into (ONNX's Attention of opset 23 for 4-D inputs, which graphopt's
opset 21 lacks):

    Y = softmax(Q @ K^T * scale + mask [+ causal]) @ V

- Q [B, Hq, S, D], K [B, Hkv, L, D], V [B, Hkv, L, Dv]; Hq a multiple of Hkv (grouped-query
  attention: query head h reads key/value head h // (Hq / Hkv), never a repeated copy);
  Y [B, Hq, S, Dv]. L counts every key, the KV cache included (the cache's Concat stays a
  node of its own, its result a graph output as the model has it).
- ``mask`` (optional): additive, float of Q's dtype, broadcastable to [B, Hq, S, L].
- ``is_causal``: query i (of S, the last S of L positions) attends keys j <= L - S + i
  (bottom-right aligned, as a decode step with a KV cache wants); the others get -inf.
- ``scale``: 0 means 1/sqrt(D).
- ``zero_nan_rows``: 1 makes a row whose softmax is NaN (every key masked with -inf)
  give zeros, as torch's exported scaled_dot_product_attention does (IsNaN, Where).

Its reference decomposition uses opset-21 ops (grouped heads as a 5-D broadcasting MatMul,
so nothing is repeated there either); codegen lowers it in place (codegen/lower/attention.py).
"""

from __future__ import annotations

import numpy as np

from ...ir import Graph, Node, TensorData, Value
from ...ir.function import DOMAIN
from .. import flops
from ..registry import InferContext, InferError, PatternKind, attr_value, build, register, set_decomposition, set_traits
from ._shapes import broadcast, check_dtype, check_rank, fmt_shape, is_int, merge_dim, same_dtype, tt
from ._specs import F, float_attr, int_attr

ATTENTION = "Attention"


@register(ATTENTION, ["Q", "K", "V", "mask?"], ["Y"],
          {"scale": float_attr(0.0), "is_causal": int_attr(0), "zero_nan_rows": int_attr(0)}, domain=DOMAIN)
def infer_attention(ctx: InferContext):
    dt = same_dtype(ctx, [0, 1, 2, 3])
    check_dtype(ctx, 0, F)
    q, k, v = (check_rank(ctx, i, 4) for i in range(3))
    for a in ("is_causal", "zero_nan_rows"):
        if ctx.attr(a) not in (0, 1):
            raise ctx.fail(f"{a} must be 0 or 1, got {ctx.attr(a)}")
    if q is None or k is None or v is None:
        return [tt(dt, None)]
    b = merge_dim(ctx, merge_dim(ctx, q[0], k[0], "Q and K batch"), v[0], "K and V batch")
    merge_dim(ctx, q[3], k[3], "Q and K head size")
    merge_dim(ctx, k[1], v[1], "K and V heads")
    merge_dim(ctx, k[2], v[2], "K and V sequence length")
    if is_int(q[1]) and is_int(k[1]) and (k[1] == 0 or q[1] % k[1]):
        raise ctx.fail(f"Q has {q[1]} heads, not a multiple of K's {k[1]}")
    if ctx.has_input(3):
        m = ctx.shape(3)
        if m is not None:
            if len(m) > 4:
                raise ctx.fail(f"the mask {fmt_shape(m)} has more than 4 dims")
            full = (b, q[1], q[2], k[2])
            try:
                got = broadcast(ctx, [full, m])
            except InferError:
                got = None
            if got is None or any(is_int(g) and is_int(f) and g != f for g, f in zip(got, full)):
                raise ctx.fail(f"the mask {fmt_shape(m)} does not broadcast to the scores {fmt_shape(full)}")
    return [tt(dt, (b, q[1], q[2], v[3]))]


def _const(body: Graph, hint: str, arr: np.ndarray) -> Value:
    return body.add_constant(body.fresh_name(hint), TensorData.from_numpy(arr))


def attention_scale(node: Node, head_size: int) -> float:
    s = float(attr_value(node, "scale"))
    return s if s else 1.0 / float(np.sqrt(head_size))


def causal_mask(s: int, length: int, dtype) -> np.ndarray:
    """The additive bottom-right causal mask [S, L]: 0 where query i may see key j, -inf else."""
    i = np.arange(s)[:, None] + (length - s)
    return np.where(np.arange(length)[None, :] <= i, 0.0, -np.inf).astype(dtype)


def decompose_attention(body: Graph, node: Node, ins: list) -> list:
    # softmax(Q K^T * scale + mask) V, grouped heads as [B, Hkv, rep, S, *] broadcasting
    q, k, v = ins[:3]
    mask = ins[3] if len(ins) > 3 else None
    b, hq, s, d = q.type.shape
    hkv, length = k.type.shape[1], k.type.shape[2]
    dt = q.type.dtype.numpy
    rep = hq // hkv
    if rep > 1:
        q = build(body, "Reshape", [q, _const(body, "q_groups", np.array([0, hkv, rep, -1, d], np.int64))]).output
        one = _const(body, "head_axis", np.array([2], np.int64))
        k = build(body, "Unsqueeze", [k, one]).output
        v = build(body, "Unsqueeze", [v, one]).output
    perm = [0, 1, 2, 4, 3] if rep > 1 else [0, 1, 3, 2]
    kt = build(body, "Transpose", [k], {"perm": perm}).output
    scores = build(body, "MatMul", [q, kt]).output
    scale = _const(body, "scale", np.array(attention_scale(node, d), dt))
    scores = build(body, "Mul", [scores, scale]).output
    if attr_value(node, "is_causal"):
        scores = build(body, "Add", [scores, _const(body, "causal", causal_mask(s, length, dt))]).output
    if mask is not None:
        if rep > 1:
            mask = _grouped_mask(body, mask, hkv, rep)
        scores = build(body, "Add", [scores, mask]).output
    p = build(body, "Softmax", [scores], {"axis": -1}).output
    if attr_value(node, "zero_nan_rows"):
        zero = _const(body, "zero", np.array(0, dt))
        p = build(body, "Where", [build(body, "IsNaN", [p]).output, zero, p]).output
    y = build(body, "MatMul", [p, v]).output
    if rep > 1:
        y = build(body, "Reshape", [y, _const(body, "heads", np.array([0, hq, -1, v.type.shape[-1]], np.int64))]).output
    return [y]


def _grouped_mask(body: Graph, mask: Value, hkv: int, rep: int) -> Value:
    """The mask over [B, Hkv, rep, S, L] scores: one of rank <= 2 broadcasts as it is; a
    head dim of 1 gains the group dim after it; per-head masks split their heads."""
    shape = mask.type.shape
    if len(shape) <= 2:
        return mask
    if shape[-3] == 1:
        return build(body, "Unsqueeze", [mask, _const(body, "group_axis", np.array([len(shape) - 2], np.int64))]).output
    m5 = np.array([0] * (len(shape) - 3) + [hkv, rep, -1, shape[-1]], np.int64)
    return build(body, "Reshape", [mask, _const(body, "mask_groups", m5)]).output


def _attention_flops(site: flops.FlopSite):
    """Two matmuls (2*S*L*D and 2*S*L*Dv per head) and about 5 per score (scale, mask,
    softmax's max, exp, sum, divide)."""
    q, k, v = site.input(0), site.input(1), site.input(2)
    if q is None or k is None or v is None:
        return None
    b, h, s, d = q
    length = k[2]
    return int(b * h * s * length * (2 * d + 2 * v[3] + 5))


set_decomposition(ATTENTION, decompose_attention, domain=DOMAIN)
set_traits([ATTENTION], domain=DOMAIN, kind=PatternKind.OPAQUE, flops=_attention_flops)
