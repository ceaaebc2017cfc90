"""graphopt.Attention, lowered in place: the relax ops of its algebra in main's dataflow
block, so that TVM's FuseOps groups them as it grouped the ops the fusion replaced (scale
and mask into the QK^T matmul's epilogue, softmax, the PV matmul) rather than as one
kernel of two matmuls and a softmax, which no schedule of graphopt's handles yet.

Grouped-query attention reshapes Q [B, Hq, S, D] to [B, Hkv, rep * S, D] (query head h is
Hkv group h // rep, and the rep heads of a group are contiguous), so that each K/V head is
read by one matmul for all its query heads and no repeated copy of K or V is made; a mask
with a head dim splits it the same way. A decode step (S = 1) thus multiplies a rep-row
block by each K head.

On CPU, large float32 problems with static shapes go to graphopt's own kernel instead
(`codegen.kernels.attention`, online softmax: the S x L scores are never materialized);
`use_kernel` is the benefit rule, measured by benchmarks/attention_kernel.py.
"""

from __future__ import annotations

from typing import Optional

from ...ir import DType
from ...ops.defs.attention import ATTENTION, attention_scale, causal_mask
from .helpers import isnan, rx, scalar, static_shape, tvm_dtype
from .registry import register_lowering

# "auto": `use_kernel` decides; "always"/"never": the kernel wherever it applies / never
# (benchmarks and tests set this to measure or check either path).
KERNEL_MODE = "auto"
# The benefit rule's thresholds (measured by benchmarks/attention_kernel.py: see `use_kernel`).
KERNEL_MIN_KEYS = 128
KERNEL_MIN_ROWS = 16
KERNEL_MIN_SCORE_BYTES = 8 << 20


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


def kernel_problem(ctx, n):
    """The static problem of ``n`` for `codegen.kernels.attention`, or None where the
    kernel does not apply (not float32, a symbolic dim, a mask of more than 4 dims)."""
    from ..kernels.attention import AttentionShape

    q, k, v = n.inputs[:3]
    mask = n.inputs[3] if len(n.inputs) > 3 else None
    vals = [q, k, v] + ([mask] if mask is not None else [])
    if any(x.type.dtype is not DType.FLOAT32 or not static_shape(x.type.shape) for x in vals):
        return None
    b, hq, s, d = q.type.shape
    hkv, length = k.type.shape[1], k.type.shape[2]
    mshape = None
    if mask is not None:
        m = list(mask.type.shape)
        if len(m) > 4:
            return None
        mshape = tuple([1] * (4 - len(m)) + m)
    return AttentionShape(b, hq, hkv, s, length, d, v.type.shape[3], attention_scale(n, int(d)),
                          bool(ctx.attr(n, "is_causal", 0)), bool(ctx.attr(n, "zero_nan_rows", 0)), mshape)


def use_kernel(p) -> bool:
    """The benefit rule: the kernel where it measured faster than the in-place ops (at
    least KERNEL_MIN_KEYS keys, or KERNEL_MIN_ROWS query rows), or where the scores the
    in-place ops materialize (B * Hq * S * L floats) are large.

    Measured 2026-12-02 (benchmarks/attention_kernel.py, znver3, 2 cores, 12 heads, D = 64,
    kernel / in-place time): causal S = L = 16, 32, 64, 128, 512, 2048: 0.74, 0.48, 0.42,
    0.51, 0.35, 0.25 (2048: 103 ms against 425 ms, +16 MB peak against +384 MB); decode
    L = 16, 32, 64: 1.78, 0.99, 0.98, L = 128, 512, 2048: 0.94, 0.53, 0.46; GQA 16/4 decode
    L = 128, 512, 2048: 0.76, 0.67, 0.54. Short decode steps stay in place: 12 heads of 16
    keys are too little work for the kernel's parallel tasks."""
    if KERNEL_MODE != "auto":
        return KERNEL_MODE == "always"
    return (p.length >= KERNEL_MIN_KEYS or p.s >= KERNEL_MIN_ROWS
            or p.b * p.hq * p.s * p.length * 4 >= KERNEL_MIN_SCORE_BYTES)


@register_lowering(ATTENTION, domain="graphopt", target="cpu")
def _attention_cpu(ctx, n):
    y = _kernel(ctx, n)
    return y if y is not None else _attention(ctx, n)


def _kernel(ctx, n) -> Optional[object]:
    from ..kernels.attention import emit_attention

    p = kernel_problem(ctx, n)
    if p is None or not use_kernel(p):
        return None
    mask = n.inputs[3] if len(n.inputs) > 3 else None
    m = None
    if mask is not None:
        m = ctx.get(mask)
        if len(mask.type.shape) < 4:
            m = ctx.emit(rx().op.reshape(m, list(p.mask_shape)))  # a view: more dims of 1
    return emit_attention(ctx, p, ctx.get(n.inputs[0]), ctx.get(n.inputs[1]), ctx.get(n.inputs[2]), m)
