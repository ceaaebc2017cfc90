"""Reductions: Reduce* (axes as an input), ArgMax/ArgMin, CumSum, TopK."""

from __future__ import annotations

from ...ir.types import DType
from .. import flops
from ..registry import InferContext, PatternKind, register, set_traits
from ._shapes import check_dtype, const_ints, fmt_shape, norm_axes, norm_axis, static_len, tt
from ._specs import F, NUM, int_attr, types

_REDUCE_ATTRS = {"keepdims": int_attr(1), "noop_with_empty_axes": int_attr(0)}
_NUM = NUM
_SUM_TYPES = F | types("i32 i64 u32 u64")


def _reduce(ctx: InferContext):
    """Reduce over the constant ``axes`` input (all axes when absent or empty, unless
    noop_with_empty_axes); non-constant axes give fresh dims."""
    dt = ctx.dtype(0)
    x = ctx.shape(0)
    keep = bool(ctx.attr("keepdims"))
    axes = None
    if ctx.has_input(1):
        check_dtype(ctx, 1, {DType.INT64})
        axes = const_ints(ctx, 1, "axes")
        if axes is None:
            n = static_len(ctx, 1)
            if n == 0:
                axes = []
            elif x is None:
                return [tt(dt, None)]
            elif keep:
                return [tt(dt, [1 if d == 1 else ctx.fresh_dim(0, k) for k, d in enumerate(x)])]
            else:
                return [tt(dt, None if n is None else [ctx.fresh_dim(0, k) for k in range(len(x) - n)])]
    if x is None:
        return [tt(dt, None)]
    if not axes:
        if ctx.attr("noop_with_empty_axes"):
            return [tt(dt, x)]
        axes = list(range(len(x)))
    axes = norm_axes(ctx, axes, len(x))
    if keep:
        return [tt(dt, [1 if k in axes else d for k, d in enumerate(x)])]
    return [tt(dt, [d for k, d in enumerate(x) if k not in axes])]


def _reduce_checked(allowed):
    def infer(ctx: InferContext):
        check_dtype(ctx, 0, allowed)
        return _reduce(ctx)

    return infer


for _op, _allowed in [("ReduceSum", _SUM_TYPES), ("ReduceMean", _SUM_TYPES), ("ReduceProd", _SUM_TYPES),
                      ("ReduceL1", _SUM_TYPES), ("ReduceL2", _SUM_TYPES), ("ReduceLogSum", _SUM_TYPES),
                      ("ReduceLogSumExp", _SUM_TYPES), ("ReduceSumSquare", _SUM_TYPES),
                      ("ReduceMax", NUM | {DType.BOOL}), ("ReduceMin", NUM | {DType.BOOL})]:
    register(_op, ["data", "axes?"], ["reduced"], _REDUCE_ATTRS)(_reduce_checked(_allowed))


def _arg_reduce(ctx: InferContext):
    check_dtype(ctx, 0, NUM)
    x = ctx.shape(0)
    if x is None:
        return [tt(DType.INT64, None)]
    axis = norm_axis(ctx, ctx.attr("axis"), len(x))
    if ctx.attr("keepdims"):
        return [tt(DType.INT64, [1 if k == axis else d for k, d in enumerate(x)])]
    return [tt(DType.INT64, [d for k, d in enumerate(x) if k != axis])]


for _op in ("ArgMax", "ArgMin"):
    register(_op, ["data"], ["reduced"], {"axis": int_attr(0), "keepdims": int_attr(1), "select_last_index": int_attr(0)})(
        _arg_reduce)


@register("CumSum", ["x", "axis"], ["y"], {"exclusive": int_attr(0), "reverse": int_attr(0)})
def infer_cumsum(ctx: InferContext):
    check_dtype(ctx, 0, _SUM_TYPES)
    check_dtype(ctx, 1, {DType.INT32, DType.INT64})
    a = ctx.shape(1)
    if a is not None and (len(a) > 1 or (len(a) == 1 and a[0] != 1)):
        raise ctx.fail(f"CumSum axis must be a scalar, got {fmt_shape(a)}")
    axis = const_ints(ctx, 1, "axis")
    if axis is not None and ctx.shape(0) is not None:
        norm_axis(ctx, axis[0], len(ctx.shape(0)))
    return [tt(ctx.dtype(0), ctx.shape(0))]


@register("TopK", ["X", "K"], ["Values", "Indices"], {"axis": int_attr(-1), "largest": int_attr(1), "sorted": int_attr(1)})
def infer_topk(ctx: InferContext):
    """X's shape with K elements on ``axis``; values keep X's dtype, indices are i64."""
    check_dtype(ctx, 0, NUM)
    check_dtype(ctx, 1, {DType.INT64})
    ks = ctx.shape(1)
    if ks is not None and (len(ks) != 1 or (isinstance(ks[0], int) and ks[0] != 1)):
        raise ctx.fail(f"TopK K must be a 1-d tensor of one element, got {fmt_shape(ks)}")
    x = ctx.shape(0)
    if x is None:
        return [tt(ctx.dtype(0), None), tt(DType.INT64, None)]
    axis = norm_axis(ctx, ctx.attr("axis"), len(x))
    k = const_ints(ctx, 1, "K")
    out = list(x)
    if k is None:
        out[axis] = ctx.fresh_dim(0, axis)
    else:
        kv = k[0]
        if kv < 0:
            raise ctx.fail(f"TopK K must not be negative, got {kv}")
        if isinstance(x[axis], int) and kv > x[axis]:
            raise ctx.fail(f"TopK K={kv} is larger than axis {axis} of {fmt_shape(x)}")
        out[axis] = kv
    return [tt(ctx.dtype(0), out), tt(DType.INT64, out)]


# TopK sorts and CumSum scans: neither is a reduction a fused kernel can end in.
set_traits(["ArgMax", "ArgMin", "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMean",
            "ReduceMin", "ReduceProd", "ReduceSum", "ReduceSumSquare"], kind=PatternKind.REDUCTION)
set_traits(["CumSum", "TopK"], kind=PatternKind.OPAQUE)


set_traits(["ArgMax", "ArgMin", "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMean",
            "ReduceMin", "ReduceProd", "ReduceSum", "ReduceSumSquare"], flops=flops.input_elements)
