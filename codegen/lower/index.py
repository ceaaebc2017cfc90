"""Ops that index with tensors: Gather, GatherElements, GatherND, ScatterND,
ScatterElements, OneHot, NonZero, Compress.

ONNX's negative indices are normalized first (`norm_indices_te`), then checked against the
data (`checked_indices`): an index out of range at run time is an IndexRangeError naming
the node, never a read or write outside the buffer. Where a relax op has ONNX's semantics
(scatter_nd, scatter_elements, gather_nd, take) it is used.

NonZero (and Compress with a run-time condition) use relax.op.nonzero, which TVM evaluates
on the host through a Python packed function (``relax.run.nonzero``): correct on CPU; the
count of non-zeros is bound to the IR's symbol for it with a match_cast.
"""

from __future__ import annotations

import numpy as np

from ...errors import GraphoptError
from ...ir import DType
from .helpers import axis_attr, rx, static_shape, tirx
from .registry import register_lowering


def _indexed_dim(ix, d, i, axis_of, first_axis):
    """The size of the data dim that index ``ix[i]`` addresses: dim ``axis_of`` for every
    index, or (ND ops) dim ``first_axis`` + the position along the indices' last dim."""
    if axis_of is not None:
        return d.shape[axis_of]
    m = int(ix.shape[-1])
    dim = d.shape[first_axis + m - 1]
    for j in range(m - 2, -1, -1):
        dim = tirx().Select(i[-1] == j, d.shape[first_axis + j], dim)
    return dim


def norm_indices_te(ctx, idx_expr, data_expr, axis_of=None, first_axis=None):
    """ONNX negative indices (idx < 0 counts from the end of data's dim) made non-negative.
    Data's axis is ``axis_of`` for every index, or (ND ops) ``first_axis`` + the position
    along the indices' last dim."""
    from tvm import te

    def compute(ix, d):
        def f(*i):
            v = ix(*i)
            dim = _indexed_dim(ix, d, i, axis_of, first_axis)
            return tirx().Select(v < tirx().const(0, ix.dtype), v + tirx().Cast(ix.dtype, dim), v)

        return te.compute(ix.shape, f, name="norm_idx")

    return ctx.te(compute, idx_expr, data_expr)


class IndexRangeError(GraphoptError, IndexError):
    """A run-time index outside the data it indexes; the message names the node."""


def _register_index_check():
    """The packed function the checked index ops call: it passes the indices through, or
    raises IndexRangeError when the flag computed next to them is set. Written as a pure
    call whose result the indexing op reads, it works inside dataflow blocks, cannot be
    dropped or reordered after the access, and costs one small reduction per call."""
    import tvm
    import tvm_ffi

    tvm_ffi.register_error(IndexRangeError)

    def check(indices, flag, message):
        # (np.from_dlpack: a view, 2 us; Tensor.numpy() copies through a new array, 50 us)
        f = np.from_dlpack(flag) if flag.device.dlpack_device_type() == 1 else flag.numpy()
        if int(f) != 0:
            raise IndexRangeError(str(message))
        return indices

    tvm.register_global_func(_CHECK_FN, check, override=True)


_CHECK_FN = "graphopt.check_indices"


def checked_indices(ctx, ie, data, axis_of=None, first_axis=None, what: str = "index"):
    """``ie`` (indices already made non-negative) checked against ``data``'s dims (``axis_of``
    for every index, or, ND ops, ``first_axis`` + the position along the indices' last dim)
    before any kernel reads through them: an index out of range is a clean error naming the
    node, not a read or write outside the buffer (TVM's gathers do not check; a bad index
    crashed the process)."""
    import tvm
    from tvm import relax, te

    def flag(ix, d):
        def bad(*i):
            v = ix(*i)
            dim = _indexed_dim(ix, d, i, axis_of, first_axis)
            return tirx().Cast("int8", tirx().Or(v < tirx().const(0, ix.dtype), v >= tirx().Cast(ix.dtype, dim)))

        ax = [te.reduce_axis((0, s), name=f"k{j}") for j, s in enumerate(ix.shape)]
        return te.compute((), lambda: te.max(bad(*ax), axis=ax) if ax else bad(), name="index_out_of_range")

    f = ctx.te(flag, ie, data)
    n = ctx.node
    msg = f"node {n.name!r} ({n.qualified_op}): {what} out of range for the data's shape" if n is not None \
        else f"{what} out of range"
    return ctx.emit(relax.op.call_pure_packed(_CHECK_FN, ie, f, tvm.ir.StringImm(msg), ty_args=ie.ty))


def indices(ctx, idx, x, **where):
    """Run-time indices ``idx`` into ``x``: negatives wrapped, and checked once per call
    (`norm_indices_te`, `checked_indices`; ``where``: ``axis_of`` or ``first_axis``)."""
    data = ctx.get(x)
    return checked_indices(ctx, norm_indices_te(ctx, ctx.get(idx), data, **where), data, **where)


@register_lowering("Gather")
def _gather(ctx, n):
    x, idx = n.inputs
    r = ctx.rank(x)
    axis = axis_attr(ctx, n, "axis", r, 0)
    dim = x.type.shape[axis]
    c = ctx.const_of(idx)
    if c is not None and isinstance(dim, int):
        c = np.where(c < 0, c + dim, c).astype(np.int64)
        if c.size and (c.min() < 0 or c.max() >= dim):
            raise GraphoptError(f"node {n.name!r} (Gather): constant index {int(c[(c < 0) | (c >= dim)][0])} is out "
                                f"of range for axis {axis} of size {dim}")
        ie = ctx.array(c, idx.name)
    else:
        ie = indices(ctx, idx, x, axis_of=axis)
    return ctx.emit(rx().op.take(ctx.get(x), ie, axis))


@register_lowering("GatherElements")
def _gather_elements(ctx, n):
    x, idx = n.inputs
    r = ctx.rank(x)
    axis = axis_attr(ctx, n, "axis", r, 0)
    ie = indices(ctx, idx, x, axis_of=axis)
    return ctx.emit(rx().op.gather_elements(ctx.get(x), ie, axis))


@register_lowering("GatherND")
def _gather_nd(ctx, n):
    x, idx = n.inputs
    b = ctx.attr(n, "batch_dims", 0)
    ie = indices(ctx, idx, x, first_axis=b)
    return ctx.emit(rx().op.gather_nd(ctx.get(x), ie, b))


_RED = {"none": "update", "add": "add", "mul": "mul", "max": "max", "min": "min"}


@register_lowering("ScatterND")
def _scatter_nd(ctx, n):
    x, idx, upd = n.inputs
    red = ctx.attr(n, "reduction", "none")
    if red not in _RED:
        raise ctx.fail(f"ScatterND reduction {red!r} is not supported")
    ie = indices(ctx, idx, x, first_axis=0)
    return ctx.emit(rx().op.scatter_nd(ctx.get(x), ie, ctx.get(upd), _RED[red]))


@register_lowering("ScatterElements")
def _scatter_elements(ctx, n):
    x, idx, upd = n.inputs
    r = ctx.rank(x)
    axis = axis_attr(ctx, n, "axis", r, 0)
    red = ctx.attr(n, "reduction", "none")
    if red not in _RED:
        raise ctx.fail(f"ScatterElements reduction {red!r} is not supported")
    ie = indices(ctx, idx, x, axis_of=axis)
    return ctx.emit(rx().op.scatter_elements(ctx.get(x), ie, ctx.get(upd), axis, _RED[red]))


@register_lowering("OneHot")
def _one_hot(ctx, n):
    idx, depth_v, values = n.inputs
    R = rx().op
    out = n.outputs[0]
    r_out = len(out.type.shape)
    axis = axis_attr(ctx, n, "axis", r_out, -1)
    dc = ctx.const_of(depth_v)
    if dc is None:
        raise ctx.fail("OneHot depth must be a constant")
    depth = int(np.asarray(dc).reshape(-1)[0])  # ONNX: a float depth is truncated
    ie = ctx.get(idx)
    if idx.type.dtype is not DType.INT64:
        ie = ctx.emit(R.astype(ie, "int64"))
    ie = ctx.emit(R.where(ctx.emit(R.less(ie, rx().const(0, "int64"))),
                          ctx.emit(R.add(ie, rx().const(depth, "int64"))), ie))
    ie = ctx.emit(R.expand_dims(ie, [axis]))
    ar = np.arange(depth, dtype=np.int64).reshape([depth] + [1] * (r_out - 1 - axis))
    hot = ctx.emit(R.equal(ie, ctx.array(ar, n.name + ".range")))
    vals = ctx.get(values)
    off = ctx.emit(R.reshape(ctx.emit(R.strided_slice(vals, [0], [0], [1])), []))
    on = ctx.emit(R.reshape(ctx.emit(R.strided_slice(vals, [0], [1], [2])), []))
    return ctx.emit(R.where(hot, on, off))


def _nonzero_expr(ctx, e, rank: int, sym_dim):
    """relax.op.nonzero (evaluated on the host by a packed function) with its data-dependent
    count bound to the IR's symbol ``sym_dim`` (a fresh name when it is not a symbol)."""
    R = rx()
    nz = ctx.emit(R.op.nonzero(e))
    if isinstance(sym_dim, str):
        cnt = ctx.sym(sym_dim)
    else:
        cnt = ctx.tvm.tirx.Var(f"nnz{len(ctx.syms)}", "int64")
    return ctx.bb.match_cast(nz, R.TensorType([rank, cnt], "int64")), cnt


@register_lowering("NonZero")
def _nonzero(ctx, n):
    x = n.inputs[0]
    r = ctx.rank(x)
    if r == 0:
        raise ctx.fail("NonZero of a scalar is not supported")
    return _nonzero_expr(ctx, ctx.get(x), r, n.outputs[0].type.shape[1])[0]


@register_lowering("Compress")
def _compress(ctx, n):
    x, cond = n.inputs
    axis = ctx.attr(n, "axis", None)
    e = ctx.get(x)
    R = rx().op
    if axis is None:
        e = ctx.emit(R.reshape(e, [-1]))
        ax = 0
        dim = int(np.prod(x.type.shape)) if static_shape(x.type.shape) else None
    else:
        r = ctx.rank(x)
        ax = axis + r if axis < 0 else axis
        dim = x.type.shape[ax]
    c = ctx.const_of(cond)
    if c is not None:
        c = np.asarray(c).reshape(-1).astype(bool)
        if isinstance(dim, int):
            c = c[:dim]
        else:
            raise ctx.fail("Compress with a constant condition needs a static dim on its axis")
        sel = np.nonzero(c)[0].astype(np.int64)
        if len(sel) == 0:
            raise ctx.fail("Compress selecting nothing (an empty output) is not supported")
        return ctx.emit(R.take(e, ctx.array(sel, n.name + ".sel"), ax))
    # Data-dependent: the selected positions come from NonZero of the condition.
    ce = ctx.get(cond)
    clen = cond.type.shape[0] if cond.type.shape else None
    if not isinstance(clen, int) or not isinstance(dim, int):
        raise ctx.fail("Compress with a run-time condition needs static condition and axis lengths")
    if clen > dim:
        ce = ctx.emit(R.strided_slice(ce, [0], [0], [dim]))
    out_dim = n.outputs[0].type.shape[ax] if n.outputs[0].type.shape is not None else None
    nz, cnt = _nonzero_expr(ctx, ce, 1, out_dim)
    idx = ctx.emit(R.reshape(nz, [cnt]))
    return ctx.emit(R.take(e, idx, ax))


_register_index_check()
