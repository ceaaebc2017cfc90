"""Normalizations: BatchNormalization (folded to a scale and shift when its parameters are
constants), LayerNormalization, InstanceNormalization, GroupNormalization,
LpNormalization, MeanVarianceNormalization, LRN."""

from __future__ import annotations

from typing import Optional

import numpy as np

from ...ir import DType, Value
from .helpers import axis_attr, const, dtype_of, rx, scalar, tirx, tvm_dtype
from .registry import register_lowering


@register_lowering("LRN")
def _lrn(ctx, n):
    from tvm import te

    size = ctx.attr(n, "size")
    alpha, beta, bias = ctx.attr(n, "alpha", 1e-4), ctx.attr(n, "beta", 0.75), ctx.attr(n, "bias", 1.0)
    x = n.inputs[0]
    dt = dtype_of(x)
    lo = (size - 1) // 2

    def compute(t):
        C = t.shape[1]
        rk = te.reduce_axis((0, size), name="rk")
        sq = te.compute(t.shape, lambda nn_, c, *s: te.sum(
            tirx().if_then_else(tirx().all(c - lo + rk >= 0, c - lo + rk < C),
                                t(nn_, c - lo + rk, *s) * t(nn_, c - lo + rk, *s), const(0, dt)), axis=rk), name="lrn_sqsum")
        return te.compute(t.shape, lambda *i: t(*i) / tirx().power(const(bias, dt) + const(alpha / size, dt) * sq(*i), const(beta, dt)),
                          name="lrn")

    return ctx.te(compute, ctx.get(x))


@register_lowering("BatchNormalization")
def _batchnorm(ctx, n):
    x = n.inputs[0]
    if ctx.attr(n, "training_mode", 0):
        raise ctx.fail("BatchNormalization in training mode is not supported")
    if any(o is not None for o in n.outputs[1:]):
        raise ctx.fail("BatchNormalization's running mean/var outputs are not supported")
    eps = ctx.attr(n, "epsilon", 1e-5)
    r = ctx.rank(x)
    vals = [ctx.const_of(v) for v in n.inputs[1:5]]
    dt = dtype_of(x)
    shp = [-1] + [1] * (r - 2)
    if all(v is not None for v in vals):
        s, bb, m, var = (np.asarray(v, dtype=np.float64) for v in vals)
        a = s / np.sqrt(var + eps)
        c = bb - m * a
        ae = ctx.array(a.astype(x.type.dtype.numpy).reshape(shp), n.name + ".scale")
        ce = ctx.array(c.astype(x.type.dtype.numpy).reshape(shp), n.name + ".shift")
        return ctx.emit(rx().op.add(ctx.emit(rx().op.multiply(ctx.get(x), ae)), ce))
    s, bb, m, var = (ctx.emit(rx().op.reshape(ctx.get(v), shp)) for v in n.inputs[1:5])
    R = rx().op
    a = ctx.emit(R.divide(s, ctx.emit(R.sqrt(ctx.emit(R.add(var, scalar(ctx, eps, dt)))))))
    y = ctx.emit(R.multiply(ctx.emit(R.subtract(ctx.get(x), m)), a))
    return ctx.emit(R.add(y, bb))


def _bcast_param(ctx, v: Optional[Value], norm_shape: list, dt: str, fill: float):
    if v is None:
        return ctx.array(np.full([d for d in norm_shape], fill, dtype=dt), "fill") if all(isinstance(d, int) for d in norm_shape) \
            else ctx.emit(rx().op.full(norm_shape, rx().const(fill, dt), dt))
    c = ctx.const_of(v)
    if c is not None and all(isinstance(d, int) for d in norm_shape):
        return ctx.array(np.ascontiguousarray(np.broadcast_to(c, norm_shape)), v.name)
    return ctx.emit(rx().op.broadcast_to(ctx.get(v), norm_shape))


@register_lowering("LayerNormalization")
def _layer_norm(ctx, n):
    x = n.inputs[0]
    r = ctx.rank(x)
    axis = axis_attr(ctx, n, "axis", r, -1)
    eps = ctx.attr(n, "epsilon", 1e-5)
    dt = dtype_of(x)
    norm_shape = ctx.shape_of(x)[axis:]
    g = _bcast_param(ctx, n.inputs[1], norm_shape, dt, 1.0)
    b = _bcast_param(ctx, n.inputs[2] if len(n.inputs) > 2 else None, norm_shape, dt, 0.0)
    axes = list(range(axis, r))
    if all(o is None for o in n.outputs[1:]):
        return ctx.emit(rx().op.nn.layer_norm(ctx.get(x), g, b, axes, eps))
    # Mean and InvStdDev wanted too: spelled out in the stash type, as ONNX defines them.
    R = rx().op
    st = tvm_dtype(DType.from_onnx(ctx.attr(n, "stash_type", 1)))
    xs = ctx.emit(R.astype(ctx.get(x), st))
    mean = ctx.emit(R.mean(xs, axes, keepdims=True))
    xc = ctx.emit(R.subtract(xs, mean))
    inv = ctx.emit(R.rsqrt(R.add(R.mean(R.multiply(xc, xc), axes, keepdims=True), scalar(ctx, eps, st))))
    y = ctx.emit(R.add(R.multiply(R.astype(R.multiply(xc, inv), dt), g), b))
    return [y, mean, inv]


@register_lowering("InstanceNormalization")
def _instance_norm(ctx, n):
    x = n.inputs[0]
    r = ctx.rank(x)
    eps = ctx.attr(n, "epsilon", 1e-5)
    R = rx().op
    dt = dtype_of(x)
    e = ctx.get(x)
    axes = list(range(2, r))
    mean = ctx.emit(R.mean(e, axes, True))
    xc = ctx.emit(R.subtract(e, mean))
    var = ctx.emit(R.mean(ctx.emit(R.multiply(xc, xc)), axes, True))
    y = ctx.emit(R.divide(xc, ctx.emit(R.sqrt(ctx.emit(R.add(var, scalar(ctx, eps, dt)))))))
    shp = [-1] + [1] * (r - 2)
    s = ctx.emit(R.reshape(ctx.get(n.inputs[1]), shp))
    b = ctx.emit(R.reshape(ctx.get(n.inputs[2]), shp))
    return ctx.emit(R.add(ctx.emit(R.multiply(y, s)), b))


@register_lowering("LpNormalization")
def _lp_norm(ctx, n):
    x = n.inputs[0]
    r = ctx.rank(x)
    axis = axis_attr(ctx, n, "axis", r, -1)
    p = ctx.attr(n, "p", 2)
    R = rx().op
    e = ctx.get(x)
    if p == 1:
        norm = ctx.emit(R.sum(ctx.emit(R.abs(e)), [axis], True))
    else:
        norm = ctx.emit(R.sqrt(ctx.emit(R.sum(ctx.emit(R.multiply(e, e)), [axis], True))))
    # A zero vector stays zero (onnxruntime), rather than 0/0.
    zero = scalar(ctx, 0, dtype_of(x))
    return ctx.emit(R.where(R.equal(norm, zero), e, R.divide(e, norm)))


@register_lowering("MeanVarianceNormalization")
def _mvn(ctx, n):
    x = n.inputs[0]
    r = ctx.rank(x)
    axes = [a + r if a < 0 else a for a in (ctx.attr(n, "axes", None) or [0, 2, 3])]
    R = rx().op
    dt = dtype_of(x)
    e = ctx.get(x)
    mean = ctx.emit(R.mean(e, axes, True))
    xc = ctx.emit(R.subtract(e, mean))
    var = ctx.emit(R.mean(ctx.emit(R.multiply(xc, xc)), axes, True))
    return ctx.emit(R.divide(xc, ctx.emit(R.add(ctx.emit(R.sqrt(var)), scalar(ctx, 1e-9, dt)))))


@register_lowering("GroupNormalization")
def _group_norm(ctx, n):
    x, scale, bias = n.inputs
    r = ctx.rank(x)
    g = ctx.attr(n, "num_groups")
    eps = ctx.attr(n, "epsilon", 1e-5)
    R = rx().op
    dt = dtype_of(x)
    shp = ctx.shape_of(x)
    N, C = shp[0], shp[1]
    if not isinstance(C, int):
        raise ctx.fail("GroupNormalization needs a static channel dim")
    e = ctx.get(x)
    cdt = "float32" if dt in ("float16", "bfloat16") and ctx.attr(n, "stash_type", 1) == 1 else dt
    if cdt != dt:
        e = ctx.emit(R.astype(e, cdt))
    gr = ctx.emit(R.reshape(e, [N, g, -1]))
    mean = ctx.emit(R.mean(gr, [2], True))
    xc = ctx.emit(R.subtract(gr, mean))
    var = ctx.emit(R.mean(ctx.emit(R.multiply(xc, xc)), [2], True))
    y = ctx.emit(R.divide(xc, ctx.emit(R.sqrt(ctx.emit(R.add(var, rx().const(eps, cdt)))))))
    y = ctx.emit(R.reshape(y, shp))
    pshape = [C] + [1] * (r - 2)
    s = ctx.emit(R.reshape(ctx.get(scale), pshape))
    b = ctx.emit(R.reshape(ctx.get(bias), pshape))
    if cdt != dt:
        s, b = ctx.emit(R.astype(s, cdt)), ctx.emit(R.astype(b, cdt))
    y = ctx.emit(R.add(ctx.emit(R.multiply(y, s)), b))
    if cdt != dt:
        y = ctx.emit(R.astype(y, dt))
    return y
