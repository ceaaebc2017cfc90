"""Pooling: MaxPool, AveragePool and their global forms through relax, LpPool and
GlobalLpPool as TE, MaxUnpool as a checked scatter."""

from __future__ import annotations

import numpy as np

from .conv import spatial_pads
from .helpers import dtype_of, rx, tirx
from .index import checked_indices
from .reduce import float_extremum
from .registry import register_lowering


def pool_window(ctx, n):
    """A pooling node's window: spatial rank, kernel, strides, dilations, effective
    (dilated) kernel, and begin/end pads with auto_pad resolved."""
    x = n.inputs[0]
    d = ctx.rank(x) - 2
    ks = list(ctx.attr(n, "kernel_shape"))
    strides = list(ctx.attr(n, "strides", None) or [1] * d)
    dil = list(ctx.attr(n, "dilations", None) or [1] * d)
    k_eff = [(k - 1) * dl + 1 for k, dl in zip(ks, dil)]
    pb, pe = spatial_pads(ctx, n, list(x.type.shape[2:]), k_eff, strides)
    return d, ks, strides, dil, k_eff, pb, pe


def _pool(kind):
    def f(ctx, n):
        x = n.inputs[0]
        d, ks, strides, dil, k_eff, pb, pe = pool_window(ctx, n)
        ceil = bool(ctx.attr(n, "ceil_mode", 0))
        if len(n.outputs) > 1 and n.outputs[1] is not None:
            raise ctx.fail("MaxPool's Indices output is not supported")
        e = ctx.get(x)
        P = rx().op.nn
        if d not in (1, 2, 3):
            raise ctx.fail(f"{d}-d pooling is not supported")
        name = {1: "1d", 2: "2d", 3: "3d"}[d]
        if kind == "max":
            return ctx.emit(getattr(P, "max_pool" + name)(e, ks, strides, pb + pe, dil, ceil))
        cip = bool(ctx.attr(n, "count_include_pad", 0))
        return ctx.emit(getattr(P, "avg_pool" + name)(e, ks, strides, pb + pe, dil, ceil, cip))

    return f


register_lowering("MaxPool")(_pool("max"))


register_lowering("AveragePool")(_pool("avg"))


@register_lowering("GlobalAveragePool", "GlobalMaxPool")
def _global_pool(ctx, n):
    x = n.inputs[0]
    axes = list(range(2, ctx.rank(x)))
    if n.op_type == "GlobalMaxPool" and x.type.dtype.is_float:
        return float_extremum(ctx, ctx.get(x), "max", axes, True, dtype_of(x))
    op = rx().op.mean if n.op_type == "GlobalAveragePool" else rx().op.max
    return ctx.emit(op(ctx.get(x), axes, True))


def _pow_abs(v, p, dt):
    tir = tirx()
    if p == 1:
        return tir.abs(v)
    if p == 2:
        return v * v
    return tir.power(tir.abs(v), tir.const(float(p), dt))


def _root(v, p, dt):
    tir = tirx()
    if p == 1:
        return v
    if p == 2:
        return tir.sqrt(v)
    return tir.power(v, tir.const(1.0 / p, dt))


@register_lowering("LpPool")
def _lp_pool(ctx, n):
    from tvm import te

    x = n.inputs[0]
    d, ks, strides, dil, k_eff, pb, _ = pool_window(ctx, n)
    p = ctx.attr(n, "p", 2)
    oshape = ctx.out_shape(n)
    if any(isinstance(o, int) and o < 0 for o in oshape):
        raise ctx.fail("LpPool needs a known output shape")
    dt = dtype_of(x)

    def compute(t):
        rks = [te.reduce_axis((0, k), name=f"rk{i}") for i, k in enumerate(ks)]

        def f(nn_, c, *o):
            pos = [o[i] * strides[i] - pb[i] + rks[i] * dil[i] for i in range(d)]
            conds = []
            for j in range(d):
                conds += [pos[j] >= 0, pos[j] < t.shape[2 + j]]
            inside = tirx().all(*conds)
            v = t(nn_, c, *pos)
            return te.sum(tirx().Select(inside, _pow_abs(v, p, dt), tirx().const(0, dt)), axis=rks)

        s = te.compute(oshape, f, name="lppool_sum")
        return te.compute(oshape, lambda *i: _root(s(*i), p, dt), name="lppool")

    return ctx.te(compute, ctx.get(x))


@register_lowering("GlobalLpPool")
def _global_lp_pool(ctx, n):
    from tvm import te

    x = n.inputs[0]
    r = ctx.rank(x)
    p = ctx.attr(n, "p", 2)
    dt = dtype_of(x)
    R = rx().op
    powd = ctx.te(lambda t: te.compute(t.shape, lambda *i: _pow_abs(t(*i), p, dt), name="lp_pow"), ctx.get(x))
    s = ctx.emit(R.sum(powd, list(range(2, r)), True))
    return ctx.te(lambda t: te.compute(t.shape, lambda *i: _root(t(*i), p, dt), name="lp_root"), s)


@register_lowering("MaxUnpool")
def _max_unpool(ctx, n):
    x, ind = n.inputs[0], n.inputs[1]
    R = rx().op
    oshape = ctx.out_shape(n)
    if any(not isinstance(o, int) or o < 0 for o in oshape):
        raise ctx.fail("MaxUnpool needs a static output shape")
    total = int(np.prod(oshape))
    dt = dtype_of(x)
    flat = ctx.emit(R.zeros([total], dt))
    xe = ctx.emit(R.reshape(ctx.get(x), [-1]))
    ie = ctx.emit(R.reshape(ctx.get(ind), [-1]))
    ie = checked_indices(ctx, ie, flat, axis_of=0, what="an index into the output")
    y = ctx.emit(R.scatter_elements(flat, ie, xe, 0, "update"))
    return ctx.emit(R.reshape(y, oshape))
