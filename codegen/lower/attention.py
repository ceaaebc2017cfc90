"""graphopt.Attention, lowered in place: the relax ops of its algebra in main's dataflow
block, so that TVM's FuseOps groups them as it grouped the ops the fusion replaced (scale
and mask into the QK^T matmul's epilogue, softmax, the PV matmul) rather than as one
kernel of two matmuls and a softmax, which no schedule of graphopt's handles yet.

Grouped-query attention reshapes Q [B, Hq, S, D] to [B, Hkv, rep * S, D] (query head h is
Hkv group h // rep, and the rep heads of a group are contiguous), so that each K/V head is
read by one matmul for all its query heads and no repeated copy of K or V is made; a mask
with a head dim splits it the same way. A decode step (S = 1) thus multiplies a rep-row
block by each K head.
"""

from __future__ import annotations

from ...ops.defs.attention import ATTENTION, attention_scale, causal_mask
from .helpers import isnan, rx, scalar, tvm_dtype
from .registry import register_lowering


@register_lowering(ATTENTION, domain="graphopt")
def _attention(ctx, n):
    R = rx().op
    q, k, v = n.inputs[:3]
    mask = n.inputs[3] if len(n.inputs) > 3 else None
    b, hq, s, d = ctx.shape_of(q)
    hkv, length = ctx.shape_of(k)[1], ctx.shape_of(k)[2]
    dv = ctx.shape_of(v)[3]
    if not all(isinstance(x, int) for x in (hq, hkv)):
        raise ctx.fail("the head counts must be static")
    rep = hq // hkv
    dt = tvm_dtype(q.type.dtype)
    qe = ctx.get(q)
    if rep > 1:
        qe = ctx.emit(R.reshape(qe, [b, hkv, rep * s, d]))
    scores = ctx.emit(R.matmul(qe, ctx.emit(R.permute_dims(ctx.get(k), [0, 1, 3, 2]))))
    scores = ctx.emit(R.multiply(scores, scalar(ctx, attention_scale(n, int(d)), dt)))
    if ctx.attr(n, "is_causal", 0):
        if not (isinstance(s, int) and isinstance(length, int)):
            raise ctx.fail("is_causal needs static sequence lengths")
        cm = causal_mask(s, length, q.type.dtype.numpy)
        if rep > 1:
            cm = cm[None].repeat(rep, axis=0).reshape(rep * s, length)
        scores = ctx.emit(R.add(scores, ctx.array(cm, "causal_mask")))
    if mask is not None:
        m = ctx.get(mask)
        if rep > 1:
            m = _grouped_mask(ctx, m, ctx.shape_of(mask), hkv, rep, s, length)
        scores = ctx.emit(R.add(scores, m))
    p = ctx.emit(R.nn.softmax(scores, -1))
    if ctx.attr(n, "zero_nan_rows", 0):
        p = ctx.emit(R.where(ctx.emit(isnan(p)), scalar(ctx, 0.0, dt), p))
    y = ctx.emit(R.matmul(p, ctx.get(v)))
    if rep > 1:
        y = ctx.emit(R.reshape(y, [b, hq, s, dv]))
    return y


def _grouped_mask(ctx, m, shape: list, hkv: int, rep: int, s, length):
    """The additive mask (broadcastable to [B, Hq, S, L]) over [B, Hkv, rep * S, L]: its
    S rows repeated per query head of a group (a head dim splits into groups)."""
    R = rx().op
    shape = [1] * (4 - len(shape)) + list(shape)
    mb, mh = shape[0], shape[1]
    heads = hkv if mh != 1 else 1
    if mh != 1:
        m = ctx.emit(R.reshape(m, [mb, hkv, rep, shape[2], shape[3]]))
    else:
        m = ctx.emit(R.reshape(m, [mb, 1, 1, shape[2], shape[3]]))
    m = ctx.emit(R.broadcast_to(m, [mb, heads, rep, s, length]))
    return ctx.emit(R.reshape(m, [mb, heads, rep * s, length]))
