"""Shape and layout ops: Reshape, Expand, Slice (static and with run-time starts/ends),
Concat, Split, Transpose, Pad, Tile, DepthToSpace..., and the ones that make tensors from
shapes (Shape, Size, ConstantOfShape, Range, EyeLike). A shape computed at run time is
bound to symbols with `helpers.runtime_shape`."""

from __future__ import annotations

import numpy as np

from ...ir import DType, Value
from .helpers import (axis_attr, dtype_of, i64, relax_dims, runtime_shape, rx, scalar, settle_shape, tirx,
                      tvm_dtype)
from .registry import register_lowering


def _shape_tensor(ctx, x):
    return ctx.emit(rx().op.shape_to_tensor(rx().op.shape_of(x)))


def _shape_len(ctx, v: Value) -> int:
    if v.type.shape is None or len(v.type.shape) != 1 or not isinstance(v.type.shape[0], int):
        raise ctx.fail(f"shape input %{v.name} must be 1-D of a length known at compile time")
    return v.type.shape[0]


@register_lowering("Reshape")
def _reshape(ctx, n):
    """The target from the shape input and relax's own dims of the data (a 0 copies one),
    not from the IR's symbols: relax knows how the dims relate where the IR has fresh names."""
    R = rx().op
    x = ctx.get(n.inputs[0])
    xd = relax_dims(x)
    allowzero = ctx.attr(n, "allowzero", 0)
    out = n.outputs[0].type.shape
    if allowzero and out is not None and 0 in out and all(isinstance(d, int) for d in out):
        # A literal 0 dim: the result has no elements. Relax's reshape reads a 0 as "copy
        # the dim" (ONNX's allowzero=0), so the empty tensor is built directly, from the
        # data (R.zeros would fold to an empty constant, which a VM executable cannot load).
        from tvm import te

        dt = tvm_dtype(n.outputs[0].type.dtype)
        return ctx.te(lambda d: te.compute(list(out), lambda *i: tirx().const(0, dt), name="empty"), x)
    s = ctx.const_of(n.inputs[1])
    if s is not None and xd is not None:
        s = [int(v) for v in np.asarray(s).reshape(-1)]
        if not allowzero and any(v == 0 and i >= len(xd) for i, v in enumerate(s)):
            raise ctx.fail(f"shape {s} copies a dim (0) past the data's rank {len(xd)}")
        return ctx.emit(R.reshape(x, [xd[i] if v == 0 and not allowzero else v for i, v in enumerate(s)]))
    if s is not None:
        return ctx.emit(R.reshape(x, ctx.out_shape(n)))
    # Computed at run time: apply 0 (copy) and -1 (infer) to the shape tensor itself.
    r_out = _shape_len(ctx, n.inputs[1])
    t = ctx.get(n.inputs[1])
    xs = _shape_tensor(ctx, x)
    r_in = ctx.rank(n.inputs[0])
    same = ctx.emit(R.strided_slice(xs, [0], [0], [min(r_in, r_out)]))
    if r_out > r_in:
        same = ctx.emit(R.concat([same, ctx.array(np.ones(r_out - r_in, np.int64))], 0))
    zero, minus = scalar(ctx, 0, "int64"), scalar(ctx, -1, "int64")
    if not allowzero:
        t = ctx.emit(R.where(R.equal(t, zero), same, t))
    known = ctx.emit(R.prod(R.where(R.equal(t, minus), scalar(ctx, 1, "int64"), t)))
    t = ctx.emit(R.where(R.equal(t, minus), R.divide(R.prod(xs), known), t))
    shape, (x,) = runtime_shape(ctx, t, r_out, n.outputs[0], keep=[x])
    return ctx.emit(R.reshape(x, shape))


@register_lowering("Flatten")
def _flatten(ctx, n):
    return ctx.emit(rx().op.reshape(ctx.get(n.inputs[0]), ctx.out_shape(n)))


@register_lowering("Squeeze", "Unsqueeze")
def _squeeze(ctx, n):
    return ctx.emit(rx().op.reshape(ctx.get(n.inputs[0]), ctx.out_shape(n)))


@register_lowering("Transpose")
def transpose(ctx, n):
    r = ctx.rank(n.inputs[0])
    perm = ctx.attr(n, "perm", None)
    perm = list(perm) if perm else list(range(r))[::-1]
    return ctx.emit(rx().op.permute_dims(ctx.get(n.inputs[0]), perm))


@register_lowering("Concat")
def _concat(ctx, n):
    ins = [v for v in n.inputs if v is not None]
    r = ctx.rank(ins[0])
    axis = axis_attr(ctx, n, "axis", r, 0)
    # zero-sized inputs contribute nothing
    ins = [v for v in ins if not (v.type.shape is not None and isinstance(v.type.shape[axis], int) and v.type.shape[axis] == 0)] or ins[:1]
    if len(ins) == 1:
        return ctx.get(ins[0])
    return ctx.emit(rx().op.concat([ctx.get(v) for v in ins], axis=axis))


@register_lowering("Split")
def _split(ctx, n):
    x = n.inputs[0]
    r = ctx.rank(x)
    axis = axis_attr(ctx, n, "axis", r, 0)
    nout = len(n.outputs)
    sizes = ctx.ints_input(n, 1, "split")
    dim = x.type.shape[axis]
    if sizes is None:
        if not isinstance(dim, int):
            if nout == 1:
                return [ctx.get(x)]
            tup = ctx.emit(rx().op.split(ctx.get(x), nout, axis))
            return [ctx.emit(rx().TupleGetItem(tup, i)) for i in range(nout)]
        k = -(-dim // nout)
        sizes = [k] * (nout - 1) + [dim - k * (nout - 1)]
    if nout == 1:
        return [ctx.get(x)]
    idx = list(np.cumsum(sizes)[:-1].astype(int))
    tup = ctx.emit(rx().op.split(ctx.get(x), [int(i) for i in idx], axis))
    return [ctx.emit(rx().TupleGetItem(tup, i)) for i in range(nout)]


@register_lowering("Slice")
def _slice(ctx, n):
    x = n.inputs[0]
    r = ctx.rank(x)
    if any(len(n.inputs) > i and n.inputs[i] is not None and ctx.const_of(n.inputs[i]) is None for i in (1, 2, 3, 4)):
        return _slice_dynamic(ctx, n, r)
    starts = ctx.ints_input(n, 1, "starts")
    ends = ctx.ints_input(n, 2, "ends")
    axes = ctx.ints_input(n, 3, "axes") or list(range(len(starts)))
    steps = ctx.ints_input(n, 4, "steps") or [1] * len(starts)
    axes = [a + r if a < 0 else a for a in axes]
    b2, e2, s2, a2 = [], [], [], []
    for a, b, e, s in zip(axes, starts, ends, steps):
        dim = x.type.shape[a]
        if isinstance(dim, int):
            b, e, s = _norm_slice(b, e, s, dim)
            if s < 0 and e < 0:
                e = -(dim + 1)  # relax: before the first element
        lim = 2**62
        a2.append(a)
        b2.append(max(-lim, min(lim, b)))
        e2.append(max(-lim, min(lim, e)))
        s2.append(s)
    return ctx.emit(rx().op.strided_slice(ctx.get(x), a2, b2, e2, s2))


def _slice_dynamic(ctx, n, r: int):
    """Slice with starts, ends, axes or steps computed at run time: relax's
    dynamic_strided_slice (its shape function clamps the indices as ONNX does) over
    full-rank index vectors scattered from the given ones, bound to the IR's type."""
    R = rx().op

    def given(i):
        v = n.inputs[i] if len(n.inputs) > i else None
        if v is None:
            return None
        e = ctx.get(v)
        return e if v.type.dtype is DType.INT64 else ctx.emit(R.astype(e, "int64"))

    axes = given(3)
    if axes is None:
        axes = ctx.emit(R.arange(0, _len1(ctx, n.inputs[1]), 1, "int64"))
    else:
        axes = ctx.emit(R.where(R.less(axes, scalar(ctx, 0, "int64")), R.add(axes, scalar(ctx, r, "int64")), axes))

    def full(i, fill):
        base = ctx.array(np.full(r, fill, np.int64))
        v = given(i)
        return base if v is None else ctx.emit(R.scatter_elements(base, axes, v, 0))

    x = ctx.get(n.inputs[0])
    b, e, s = full(1, 0), full(2, 2**62), full(4, 1)
    # Clamp as ONNX does, and make empty slices explicit (end = begin): TVM's shape function
    # would give them a negative length. With a negative step, "before the first element"
    # must be -(dim + 1), since TVM wraps a plain -1 to the last element.
    d = ctx.emit(R.shape_to_tensor(R.shape_of(x)))
    zero, one = scalar(ctx, 0, "int64"), scalar(ctx, 1, "int64")
    neg = ctx.emit(R.less(s, zero))
    lo = ctx.emit(R.where(neg, R.negative(ctx.array(np.ones(r, np.int64))), ctx.array(np.zeros(r, np.int64))))
    hi = ctx.emit(R.where(neg, R.subtract(d, one), d))

    def canon(v):
        v = ctx.emit(R.where(R.less(v, zero), R.add(v, d), v))
        return ctx.emit(R.minimum(R.maximum(v, lo), hi))

    b, e = canon(b), canon(e)
    e = ctx.emit(R.where(neg, R.minimum(e, b), R.maximum(e, b)))
    e = ctx.emit(R.where(R.logical_and(neg, R.less(e, zero)), R.negative(R.add(d, one)), e))
    out = ctx.emit(R.dynamic_strided_slice(x, b, e, s))
    return settle_shape(ctx, out, n.outputs[0])


def _len1(ctx, v: Value) -> int:
    if v.type.shape is None or not isinstance(v.type.shape[0], int):
        raise ctx.fail(f"%{v.name} has a length unknown at compile time")
    return v.type.shape[0]


def _norm_slice(b, e, s, dim):
    if s > 0:
        b = b + dim if b < 0 else b
        e = e + dim if e < 0 else e
        b, e = max(0, min(dim, b)), max(0, min(dim, e))
    else:
        b = b + dim if b < 0 else b
        e = e + dim if e < 0 else e
        b, e = max(-1, min(dim - 1, b)), max(-1, min(dim - 1, e))
    return b, e, s


@register_lowering("Expand")
def _expand(ctx, n):
    """Broadcast relax's own dims of the data with the shape input (see Reshape)."""
    R = rx().op
    x = ctx.get(n.inputs[0])
    xd = relax_dims(x)
    s = ctx.const_of(n.inputs[1])
    if s is not None and xd is not None:
        s = [int(v) for v in np.asarray(s).reshape(-1)]
        r = max(len(s), len(xd))
        xd = [1] * (r - len(xd)) + xd
        s = [1] * (r - len(s)) + s
        return ctx.emit(R.broadcast_to(x, [a if b == 1 else b for a, b in zip(xd, s)]))
    r_s, r_x = _shape_len(ctx, n.inputs[1]), ctx.rank(n.inputs[0])
    r = max(r_s, r_x)
    t, xs = ctx.get(n.inputs[1]), _shape_tensor(ctx, x)
    if r_s < r:
        t = ctx.emit(R.concat([ctx.array(np.ones(r - r_s, np.int64)), t], 0))
    if r_x < r:
        xs = ctx.emit(R.concat([ctx.array(np.ones(r - r_x, np.int64)), xs], 0))
    t = ctx.emit(R.where(R.equal(t, scalar(ctx, 1, "int64")), xs, t))
    shape, (x,) = runtime_shape(ctx, t, r, n.outputs[0], keep=[x])
    return ctx.emit(R.broadcast_to(x, shape))


@register_lowering("Tile")
def _tile(ctx, n):
    reps = ctx.ints_input(n, 1, "repeats")
    return ctx.emit(rx().op.tile(ctx.get(n.inputs[0]), reps))


@register_lowering("Shape")
def _shape(ctx, n):
    x = n.inputs[0]
    r = ctx.rank(x)
    start = ctx.attr(n, "start", 0)
    end = ctx.attr(n, "end", None)
    start = max(0, min(r, start + r if start < 0 else start))
    end = r if end is None else max(0, min(r, end + r if end < 0 else end))
    t = ctx.emit(rx().op.shape_to_tensor(rx().op.shape_of(ctx.get(x))))
    if (start, end) != (0, r):
        t = ctx.emit(rx().op.strided_slice(t, [0], [start], [end]))
    return t


@register_lowering("Size")
def _size(ctx, n):
    x = n.inputs[0]
    dims = ctx.shape_of(x)
    p = 1
    for d in dims:
        p = p * d
    from tvm import te

    return ctx.te(lambda: te.compute((), lambda: tirx().Cast("int64", p) if not isinstance(p, int) else tirx().const(p, "int64"), name="size"))


@register_lowering("ConstantOfShape")
def _constant_of_shape(ctx, n):
    if ctx.const_of(n.inputs[0]) is None:
        shape, _ = runtime_shape(ctx, ctx.get(n.inputs[0]), _shape_len(ctx, n.inputs[0]), n.outputs[0])
    else:
        shape = ctx.out_shape(n)
    val = ctx.attr(n, "value", None)
    dt = dtype_of(n.outputs[0])
    v = 0 if val is None else np.asarray(val.numpy()).reshape(-1)[0].item()
    return ctx.emit(rx().op.full(shape, rx().const(v, dt), dt))


@register_lowering("Range")
def _range(ctx, n):
    vals = [ctx.const_of(v) for v in n.inputs]
    if any(v is None for v in vals):
        return _range_dynamic(ctx, n)
    start, limit, delta = (np.asarray(v).item() for v in vals)
    arr = np.arange(start, limit, delta).astype(n.outputs[0].type.dtype.numpy)
    return ctx.array(arr, n.outputs[0].name)


def _range_dynamic(ctx, n):
    """Range with bounds computed at run time: the count max(ceil((limit - start) / delta), 0)
    becomes a shape (a symbol bound at run time), then start + arange(count) * delta."""
    R = rx().op
    dt = dtype_of(n.outputs[0])
    start, limit, delta = (ctx.get(v) for v in n.inputs)
    span = ctx.emit(R.divide(R.subtract(R.astype(limit, "float64"), R.astype(start, "float64")),
                             R.astype(delta, "float64")))
    count = ctx.emit(R.maximum(R.astype(R.ceil(span), "int64"), scalar(ctx, 0, "int64")))
    shape, (start, delta) = runtime_shape(ctx, ctx.emit(R.reshape(count, [1])), 1, n.outputs[0], keep=[start, delta])
    steps = ctx.emit(R.arange(0, shape.values[0], 1, dt))
    out = ctx.emit(R.add(R.reshape(start, []), R.multiply(steps, R.reshape(delta, []))))
    return settle_shape(ctx, out, n.outputs[0])


@register_lowering("Trilu")
def _trilu(ctx, n):
    k = ctx.ints_input(n, 1, "k")
    k = 0 if k is None else k[0]
    op = rx().op.triu if ctx.attr(n, "upper", 1) else rx().op.tril
    return ctx.emit(op(ctx.get(n.inputs[0]), k))


@register_lowering("Pad")
def _pad(ctx, n):
    from tvm import topi

    x = n.inputs[0]
    r = ctx.rank(x)
    pads = ctx.ints_input(n, 1, "pads")
    axes = ctx.ints_input(n, 3, "axes")
    mode = ctx.attr(n, "mode", "constant")
    axes = [a + r if a < 0 else a for a in axes] if axes is not None else list(range(r))
    before, after = [0] * r, [0] * r
    k = len(axes)
    for j, a in enumerate(axes):
        before[a], after[a] = pads[j], pads[j + k]
    if any(p < 0 for p in before + after):
        raise ctx.fail("negative pads are not supported")
    if mode == "constant":
        cv = ctx.const_of(n.inputs[2]) if len(n.inputs) > 2 and n.inputs[2] is not None else None
        if len(n.inputs) > 2 and n.inputs[2] is not None and cv is None:
            raise ctx.fail("constant_value must be a constant")
        val = 0 if cv is None else np.asarray(cv).reshape(-1)[0].item()
        return ctx.te(lambda t: topi.nn.pad(t, before, after, pad_value=val), ctx.get(x))
    if mode == "reflect":
        return ctx.te(lambda t: topi.nn.mirror_pad(t, before, after, mode="REFLECT"), ctx.get(x))
    if mode == "edge":
        from tvm import te

        def compute(t):
            shp = [t.shape[i] + before[i] + after[i] for i in range(r)]

            def f(*i):
                idx = [tirx().max(tirx().min(i[d] - before[d], t.shape[d] - 1), 0) for d in range(r)]
                return t(*idx)

            return te.compute(shp, f, name="edge_pad")

        return ctx.te(compute, ctx.get(x))
    raise ctx.fail(f"pad mode {mode!r} is not supported")


@register_lowering("DepthToSpace")
def _depth_to_space(ctx, n):
    b = ctx.attr(n, "blocksize")
    mode = ctx.attr(n, "mode", "DCR")
    N, C, H, W = ctx.shape_of(n.inputs[0])
    x = ctx.get(n.inputs[0])
    if mode == "DCR":
        t = ctx.emit(rx().op.reshape(x, [N, b, b, C // (b * b), H, W]))
        t = ctx.emit(rx().op.permute_dims(t, [0, 3, 4, 1, 5, 2]))
    else:
        t = ctx.emit(rx().op.reshape(x, [N, C // (b * b), b, b, H, W]))
        t = ctx.emit(rx().op.permute_dims(t, [0, 1, 4, 2, 5, 3]))
    return ctx.emit(rx().op.reshape(t, ctx.out_shape(n)))


@register_lowering("SpaceToDepth")
def _space_to_depth(ctx, n):
    b = ctx.attr(n, "blocksize")
    N, C, H, W = ctx.shape_of(n.inputs[0])
    t = ctx.emit(rx().op.reshape(ctx.get(n.inputs[0]), [N, C, H // b, b, W // b, b]))
    t = ctx.emit(rx().op.permute_dims(t, [0, 3, 5, 1, 2, 4]))
    return ctx.emit(rx().op.reshape(t, ctx.out_shape(n)))


@register_lowering("EyeLike")
def _eye_like(ctx, n):
    from tvm import te

    shp = ctx.shape_of(n.inputs[0])
    k = ctx.attr(n, "k", 0)
    dt = dtype_of(n.outputs[0])
    one, zero = (tirx().const(True, "bool"), tirx().const(False, "bool")) if dt == "bool" else \
        (tirx().const(1, dt), tirx().const(0, dt))
    return ctx.te(lambda: te.compute(shp, lambda i, j: tirx().Select(j - i == i64(k), one, zero), name="eye_like"))


@register_lowering("ReverseSequence")
def _reverse_sequence(ctx, n):
    from tvm import te

    x, lens = n.inputs
    ba = axis_attr(ctx, n, "batch_axis", 2, 1)
    ta = axis_attr(ctx, n, "time_axis", 2, 0)

    def compute(t, s):
        def f(*i):
            L = tirx().Cast("int64", s(i[ba]))
            ti = tirx().Cast("int64", i[ta])
            src = tirx().Select(ti < L, L - i64(1) - ti, ti)
            ii = list(i)
            ii[ta] = src
            return t(*ii)

        return te.compute(t.shape, f, name="reverse_sequence")

    return ctx.te(compute, ctx.get(x), ctx.get(lens))
