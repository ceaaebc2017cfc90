"""Reductions (Reduce*, ArgMax/ArgMin, Softmax, Hardmax, CumSum, TopK), with NaN and
infinities handled as numpy and torch do where TVM's reductions lose them (they start
from the dtype's lowest finite value and skip NaN)."""

from __future__ import annotations

import numpy as np

from .helpers import axis_attr, dtype_of, isnan, rx, scalar
from .registry import register_lowering


def _reduce_axes(ctx, n, r):
    if n.op_type in ("ReduceSum",) or len(n.inputs) > 1:
        axes = ctx.ints_input(n, 1, "axes") if len(n.inputs) > 1 else None
    else:
        axes = ctx.attr(n, "axes", None)
    if not axes:
        if ctx.attr(n, "noop_with_empty_axes", 0):
            return None
        return list(range(r))
    return sorted(a + r if a < 0 else a for a in axes)


def _reduce(kind):
    def f(ctx, n):
        x = n.inputs[0]
        r = ctx.rank(x)
        axes = _reduce_axes(ctx, n, r)
        keep = bool(ctx.attr(n, "keepdims", 1))
        e = ctx.get(x)
        if axes is None:
            return e
        R = rx().op
        dt = dtype_of(x)
        if kind in ("max", "min") and x.type.dtype.is_float:
            return float_extremum(ctx, e, kind, axes, keep, dt)
        if kind in ("sum", "mean", "max", "min", "prod"):
            return ctx.emit(getattr(R, kind)(e, axes, keep))
        if kind == "l1":
            return ctx.emit(R.sum(ctx.emit(R.abs(e)), axes, keep))
        if kind == "l2":
            return ctx.emit(R.sqrt(ctx.emit(R.sum(ctx.emit(R.multiply(e, e)), axes, keep))))
        if kind == "sumsquare":
            return ctx.emit(R.sum(ctx.emit(R.multiply(e, e)), axes, keep))
        if kind == "logsum":
            return ctx.emit(R.log(ctx.emit(R.sum(e, axes, keep))))
        if kind == "logsumexp":
            # An infinite max is not subtracted (inf - inf is NaN; the answer is inf).
            m = ctx.emit(R.max(e, axes, True))
            if x.type.dtype.is_float:
                m = ctx.emit(R.where(R.isinf(m), scalar(ctx, 0, dt), m))
            s = ctx.emit(R.sum(ctx.emit(R.exp(ctx.emit(R.subtract(e, m)))), axes, True))
            out = ctx.emit(R.add(ctx.emit(R.log(s)), m))
            if not keep:
                out = ctx.emit(R.squeeze(out, axes))
            return out
        raise AssertionError(kind)

    return f


def float_extremum(ctx, e, kind: str, axes, keep: bool, dt: str):
    """max/min whose result over all -inf (+inf) is -inf (+inf). TVM's reductions start
    from the dtype's lowest (highest) finite value, so they return that instead, and
    masks built on ``max == -inf`` (attention's fully masked rows) never fire."""
    R = rx().op
    r = ctx.emit(getattr(R, kind)(e, axes, keep))
    finfo = np.finfo(np.float32 if dt == "bfloat16" else dt)
    edge, inf = (float(finfo.min), float("-inf")) if kind == "max" else (float(finfo.max), float("inf"))
    edge_c, inf_c = scalar(ctx, edge, dt), scalar(ctx, inf, dt)
    # r == edge: every element is edge or infinite; the answer is edge if any is edge.
    any_edge = ctx.emit(R.max(R.astype(R.equal(e, edge_c), "int8"), axes, keep))
    truly = ctx.emit(R.logical_or(R.not_equal(r, edge_c), R.equal(any_edge, scalar(ctx, 1, "int8"))))
    r = ctx.emit(R.where(truly, r, inf_c))
    # The reduction skips NaN (LLVM's maxnum); a NaN anywhere makes the result NaN, as in
    # numpy and torch (onnxruntime's own kernel is inconsistent here).
    has_nan = _any_nan(ctx, e, axes, keep)
    return ctx.emit(R.where(has_nan, scalar(ctx, float("nan"), dt), r))


def _any_nan(ctx, e, axes, keep: bool):
    R = rx().op
    return ctx.emit(R.equal(R.max(R.astype(isnan(e), "int8"), axes, keep), scalar(ctx, 1, "int8")))


def argext(ctx, e, kind: str, axis: int, keep: bool, is_float: bool):
    """argmax/argmin where a NaN wins (the first NaN's index, as numpy and torch give):
    TVM's compare skips NaN."""
    R = rx().op
    i = ctx.emit(getattr(R, kind)(e, axis, keep))
    if not is_float:
        return i
    # Nothing beats TVM's initial value (the lowest finite float) in a row of only -inf
    # (argmax) or +inf (argmin): its index stays -1; every element ties, so it is 0.
    i = ctx.emit(R.maximum(i, scalar(ctx, 0, "int64")))
    nan = ctx.emit(R.astype(isnan(e), "int8"))
    first_nan = ctx.emit(R.argmax(nan, axis, keep))
    has = ctx.emit(R.equal(R.max(nan, [axis], keep), scalar(ctx, 1, "int8")))
    return ctx.emit(R.where(has, first_nan, i))


for _onnx, _k in [("ReduceSum", "sum"), ("ReduceMean", "mean"), ("ReduceMax", "max"), ("ReduceMin", "min"),
                  ("ReduceProd", "prod"), ("ReduceL1", "l1"), ("ReduceL2", "l2"), ("ReduceSumSquare", "sumsquare"),
                  ("ReduceLogSum", "logsum"), ("ReduceLogSumExp", "logsumexp")]:
    register_lowering(_onnx)(_reduce(_k))


def _arg(kind):
    def f(ctx, n):
        x = n.inputs[0]
        r = ctx.rank(x)
        axis = axis_attr(ctx, n, "axis", r, 0)
        keep = bool(ctx.attr(n, "keepdims", 1))
        e = ctx.get(x)
        if ctx.attr(n, "select_last_index", 0):
            dim = x.type.shape[axis]
            if not isinstance(dim, int):
                raise ctx.fail("select_last_index needs a static dim")
            e = ctx.emit(rx().op.flip(e, axis))
            i = argext(ctx, e, kind, axis, keep, x.type.dtype.is_float)
            return ctx.emit(rx().op.subtract(rx().const(dim - 1, "int64"), i))
        return argext(ctx, e, kind, axis, keep, x.type.dtype.is_float)

    return f


register_lowering("ArgMax")(_arg("argmax"))


register_lowering("ArgMin")(_arg("argmin"))


@register_lowering("Softmax", "LogSoftmax")
def _softmax(ctx, n):
    axis = ctx.attr(n, "axis", -1)
    op = rx().op.nn.softmax if n.op_type == "Softmax" else rx().op.nn.log_softmax
    return ctx.emit(op(ctx.get(n.inputs[0]), axis))


@register_lowering("Hardmax")
def _hardmax(ctx, n):
    x = n.inputs[0]
    r = ctx.rank(x)
    axis = axis_attr(ctx, n, "axis", r, -1)
    dim = x.type.shape[axis]
    am = argext(ctx, ctx.get(x), "argmax", axis, True, x.type.dtype.is_float)  # the first maximum, as ONNX wants

    def onehot(xx, a):
        from tvm import te, tirx

        def at(*idx):
            first = tuple(idx[:axis]) + (0,) + tuple(idx[axis + 1:])
            return tirx.Select(idx[axis] == a[first], tirx.const(1, xx.dtype), tirx.const(0, xx.dtype))

        return te.compute(xx.shape, at, name="hardmax")

    del dim
    return ctx.te(onehot, ctx.get(x), am)


@register_lowering("CumSum")
def _cumsum(ctx, n):
    x = n.inputs[0]
    r = ctx.rank(x)
    axis = ctx.ints_input(n, 1, "axis")[0]
    axis = axis + r if axis < 0 else axis
    e = ctx.get(x)
    rev = ctx.attr(n, "reverse", 0)
    if rev:
        e = ctx.emit(rx().op.flip(e, axis))
    e = ctx.emit(rx().op.cumsum(e, axis, None, bool(ctx.attr(n, "exclusive", 0))))
    if rev:
        e = ctx.emit(rx().op.flip(e, axis))
    return e


@register_lowering("TopK")
def _topk(ctx, n):
    x = n.inputs[0]
    r = ctx.rank(x)
    axis = axis_attr(ctx, n, "axis", r, -1)
    k = ctx.ints_input(n, 1, "K")[0]
    largest = bool(ctx.attr(n, "largest", 1))
    if k == 0:
        shp = ctx.out_shape(n)
        return [ctx.emit(rx().op.zeros(shp, dtype_of(x))), ctx.emit(rx().op.zeros(shp, "int64"))]
    t = ctx.emit(rx().op.topk(ctx.get(x), k, axis, "both", largest, "int64"))
    return [ctx.emit(rx().TupleGetItem(t, 0)), ctx.emit(rx().TupleGetItem(t, 1))]
