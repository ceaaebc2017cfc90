"""Shape-manipulation and data-movement ops: Reshape, Transpose, Concat, Split, Slice,
Gather*, Scatter*, Squeeze/Unsqueeze, Expand, Shape, Size, Flatten, Tile, Pad,
ConstantOfShape, Range, Where, Cast, CastLike, Identity, Trilu, DepthToSpace,
SpaceToDepth, OneHot, NonZero, Compress, ReverseSequence, EyeLike, Constant."""

from __future__ import annotations

import math
from collections import Counter
from typing import Optional

import numpy as np

from ...ir import AttrKind
from ...ir.types import Dim, DType, Shape
from .. import flops
from ..registry import REQUIRED, AttrSpec, InferContext, PatternKind, register, set_traits
from ._shapes import (broadcast, check_dtype, check_rank, const_ints, fmt_shape, fresh_shape,
                      merge_dim, norm_axes, norm_axis, prod_dims, same_dtype, static_len, tt)
from ._specs import F, NUM, int_attr

IDX = frozenset({DType.INT32, DType.INT64})
I64 = frozenset({DType.INT64})


def _str(default) -> AttrSpec:
    return AttrSpec(AttrKind.STRING, default)


# ---------------------------------------------------------------- Reshape
@register("Reshape", ["data", "shape"], ["reshaped"], {"allowzero": int_attr(0)})
def infer_reshape(ctx: InferContext):
    """0 copies the input dim (unless allowzero), -1 takes what is left (symbols cancel)."""
    dt = ctx.dtype(0)
    x = ctx.shape(0)
    check_dtype(ctx, 1, I64)
    target = const_ints(ctx, 1, "Reshape shape")
    if target is None:
        return [tt(dt, fresh_shape(ctx, static_len(ctx, 1)))]
    allowzero = ctx.attr("allowzero")
    if target.count(-1) > 1:
        raise ctx.fail(f"Reshape shape {target} has more than one -1")
    if any(t < -1 for t in target):
        raise ctx.fail(f"Reshape shape {target} has a negative dim other than -1")
    if allowzero and 0 in target and -1 in target:
        raise ctx.fail(f"Reshape shape {target} has both 0 and -1 while allowzero=1")
    out: list[Dim] = []
    for k, t in enumerate(target):
        if t == 0 and not allowzero:
            if x is None:
                out.append(ctx.fresh_dim(0, k))
                continue
            if k >= len(x):
                raise ctx.fail(f"Reshape shape {target} copies dim {k} (0) of an input of rank {len(x)}")
            out.append(x[k])
        else:
            out.append(t)
    if -1 in target:
        k = target.index(-1)
        out[k] = _infer_minus_one(ctx, x, out[:k] + out[k + 1:], k, target)
    elif x is not None and all(isinstance(d, int) for d in x) and all(isinstance(d, int) for d in out):
        if math.prod(x) != math.prod(out):  # type: ignore[arg-type]
            raise ctx.fail(f"cannot reshape {fmt_shape(x)} ({math.prod(x)} elements) to {target} "  # type: ignore
                           f"({math.prod(out)} elements)")  # type: ignore[arg-type]
    return [tt(dt, out)]


def _infer_minus_one(ctx: InferContext, x: Shape, known: list[Dim], k: int, target: list[int]) -> Dim:
    if x is None:
        return ctx.fresh_dim(0, k)
    p_in = math.prod(d for d in x if isinstance(d, int))
    p_out = math.prod(d for d in known if isinstance(d, int))
    s_in = Counter(d for d in x if isinstance(d, str))
    s_out = Counter(d for d in known if isinstance(d, str))
    if s_out - s_in:
        return ctx.fresh_dim(0, k)
    rest = s_in - s_out
    if p_out == 0:
        if p_in == 0:
            return ctx.fresh_dim(0, k)
        raise ctx.fail(f"Reshape shape {target}: cannot infer -1 when the other dims hold 0 elements")
    if not rest:
        if p_in % p_out:
            raise ctx.fail(f"cannot reshape {fmt_shape(x)} ({p_in} elements) to {target}")
        return p_in // p_out
    if sum(rest.values()) == 1 and p_in == p_out:
        return next(iter(rest))
    return ctx.fresh_dim(0, k)


@register("Transpose", ["data"], ["transposed"], {"perm": AttrSpec(AttrKind.INTS)})
def infer_transpose(ctx: InferContext):
    x = ctx.shape(0)
    perm = ctx.attr("perm")
    if x is None:
        return [tt(ctx.dtype(0), None if perm is None else fresh_shape(ctx, len(perm)))]
    perm = list(perm) if perm is not None else list(range(len(x)))[::-1]
    if sorted(perm) != list(range(len(x))):
        raise ctx.fail(f"perm {perm} is not a permutation of the {len(x)} axes of {fmt_shape(x)}")
    return [tt(ctx.dtype(0), [x[p] for p in perm])]


@register("Concat", ["inputs*"], ["concat_result"], {"axis": AttrSpec(AttrKind.INT, REQUIRED)})
def infer_concat(ctx: InferContext):
    dt = same_dtype(ctx, range(ctx.num_inputs))
    shapes = [ctx.shape(i) for i in range(ctx.num_inputs)]
    known = [s for s in shapes if s is not None]
    if not known:
        return [tt(dt, None)]
    rank = len(known[0])
    if any(len(s) != rank for s in known):
        raise ctx.fail("Concat inputs differ in rank: " + ", ".join(fmt_shape(s) for s in shapes))
    if rank == 0:
        raise ctx.fail("Concat inputs must not be scalars")
    axis = norm_axis(ctx, ctx.attr("axis"), rank)
    out: list[Dim] = []
    for k in range(rank):
        if k == axis:
            continue
        d = known[0][k]
        for s in known[1:]:
            try:
                d = merge_dim(ctx, d, s[k], "")
            except Exception:
                raise ctx.fail(f"Concat inputs differ on axis {k} (not the concat axis {axis}): "
                               + ", ".join(fmt_shape(s) for s in shapes)) from None
        out.append(d)
    if len(known) == len(shapes):
        out.insert(axis, prod_sum(ctx, [s[axis] for s in known], axis))
    else:
        out.insert(axis, ctx.fresh_dim(0, axis))
    return [tt(dt, out)]


def prod_sum(ctx: InferContext, dims: list[Dim], axis: int) -> Dim:
    nonzero = [d for d in dims if d != 0]
    if all(isinstance(d, int) for d in nonzero):
        return sum(nonzero)  # type: ignore[arg-type]
    if len(nonzero) == 1:
        return nonzero[0]
    return ctx.fresh_dim(0, axis)


@register("Split", ["input", "split?"], ["outputs*"], {"axis": int_attr(0), "num_outputs": AttrSpec(AttrKind.INT)})
def infer_split(ctx: InferContext):
    """Sizes from the split input, else num_outputs chunks of ceil(dim / n) (the last smaller)."""
    dt = ctx.dtype(0)
    x = ctx.shape(0)
    n = ctx.num_outputs
    num = ctx.attr("num_outputs")
    if num is not None and ctx.has_input(1):
        raise ctx.fail("Split takes either the split input or the num_outputs attribute, not both")
    if num is not None and num != n:
        raise ctx.fail(f"Split num_outputs={num} but the node has {n} outputs")
    if x is None:
        return [tt(dt, None)] * n
    axis = norm_axis(ctx, ctx.attr("axis"), len(x))
    d = x[axis]
    sizes: Optional[list[Dim]] = None
    if ctx.has_input(1):
        check_dtype(ctx, 1, I64)
        split = const_ints(ctx, 1, "split")
        if split is not None:
            if len(split) != n:
                raise ctx.fail(f"Split sizes {split} give {len(split)} outputs, the node has {n}")
            if any(s < 0 for s in split):
                raise ctx.fail(f"Split sizes {split} must not be negative")
            if isinstance(d, int) and sum(split) != d:
                raise ctx.fail(f"Split sizes {split} sum to {sum(split)}, not to dim {axis} of {fmt_shape(x)}")
            sizes = list(split)
    elif isinstance(d, int):
        if num is None and d % n:
            raise ctx.fail(f"dim {axis} ({d}) of {fmt_shape(x)} does not split evenly into {n} outputs")
        chunk = -(-d // n)
        sizes = [chunk] * (n - 1) + [d - chunk * (n - 1)]
        if sizes[-1] < 0:
            raise ctx.fail(f"dim {axis} ({d}) is too small to split into {n} outputs")
    elif n == 1:
        sizes = [d]
    outs = []
    for i in range(n):
        s = list(x)
        s[axis] = sizes[i] if sizes is not None else ctx.fresh_dim(i, axis)
        outs.append(tt(dt, s))
    return outs


# ---------------------------------------------------------------- Slice
@register("Slice", ["data", "starts", "ends", "axes?", "steps?"], ["output"])
def infer_slice(ctx: InferContext):
    dt = ctx.dtype(0)
    x = ctx.shape(0)
    for i in range(1, 5):
        if ctx.has_input(i):
            check_dtype(ctx, i, IDX)
    if x is None:
        return [tt(dt, None)]
    rank = len(x)
    starts, ends = const_ints(ctx, 1, "starts"), const_ints(ctx, 2, "ends")
    axes = const_ints(ctx, 3, "axes") if ctx.has_input(3) else None
    steps = const_ints(ctx, 4, "steps") if ctx.has_input(4) else None
    n = len(starts) if starts is not None else len(ends) if ends is not None else static_len(ctx, 1)
    if ctx.has_input(3) and axes is None:
        return [tt(dt, fresh_shape(ctx, rank))]  # any axis may be sliced
    if axes is None:
        if n is None:
            return [tt(dt, fresh_shape(ctx, rank))]
        axes = list(range(n))
    axes = norm_axes(ctx, axes, rank)
    for what, vals in (("starts", starts), ("ends", ends), ("steps", steps)):
        if vals is not None and len(vals) != len(axes):
            raise ctx.fail(f"Slice {what} has {len(vals)} values for {len(axes)} axes")
    out = list(x)
    for j, a in enumerate(axes):
        step = steps[j] if steps is not None else (1 if not ctx.has_input(4) else None)
        if step == 0:
            raise ctx.fail("Slice steps must not be 0")
        d = x[a]
        if starts is None or ends is None or step is None:
            out[a] = ctx.fresh_dim(0, a)
        elif isinstance(d, int):
            out[a] = len(range(*slice(starts[j], ends[j], step).indices(d)))
        elif step == 1 and starts[j] == 0 and ends[j] >= 2 ** 31 - 1:
            out[a] = d
        elif step == -1 and starts[j] == -1 and ends[j] <= -(2 ** 31):
            out[a] = d
        else:
            out[a] = ctx.fresh_dim(0, a)
    return [tt(dt, out)]


# ---------------------------------------------------------------- Gather / Scatter
@register("Gather", ["data", "indices"], ["output"], {"axis": int_attr(0)})
def infer_gather(ctx: InferContext):
    """data.shape[:axis] + indices.shape + data.shape[axis+1:]."""
    check_dtype(ctx, 1, IDX)
    x, idx = check_rank(ctx, 0, at_least=1), ctx.shape(1)
    if x is None or idx is None:
        return [tt(ctx.dtype(0), None)]
    axis = norm_axis(ctx, ctx.attr("axis"), len(x))
    _check_const_indices(ctx, x[axis], f"axis {axis}")
    return [tt(ctx.dtype(0), tuple(x[:axis]) + tuple(idx) + tuple(x[axis + 1:]))]


def _check_const_indices(ctx: InferContext, size, where: str) -> None:
    """ONNX makes an index outside [-size, size-1] an error; a constant one is refused here,
    where it is known, instead of being folded, exported or compiled into a wild read."""
    idx = ctx.const(1)
    if idx is None or not isinstance(size, int) or idx.size == 0:
        return
    lo, hi = int(idx.min()), int(idx.max())
    if lo < -size or hi >= size:
        bad = lo if lo < -size else hi
        raise ctx.fail(f"index {bad} is out of range for {where} of size {size} (valid: {-size}..{size - 1})")


@register("GatherElements", ["data", "indices"], ["output"], {"axis": int_attr(0)})
def infer_gather_elements(ctx: InferContext):
    check_dtype(ctx, 1, IDX)
    x, idx = ctx.shape(0), ctx.shape(1)
    if x is not None:
        norm_axis(ctx, ctx.attr("axis"), len(x))
        if idx is not None and len(idx) != len(x):
            raise ctx.fail(f"GatherElements indices {fmt_shape(idx)} must have the rank of data {fmt_shape(x)}")
        axis = norm_axis(ctx, ctx.attr("axis"), len(x))
        _check_const_indices(ctx, x[axis], f"axis {axis}")
    return [tt(ctx.dtype(0), idx)]


@register("GatherND", ["data", "indices"], ["output"], {"batch_dims": int_attr(0)})
def infer_gather_nd(ctx: InferContext):
    """indices.shape[:-1] + data.shape[batch_dims + indices.shape[-1]:]."""
    check_dtype(ctx, 1, I64)
    x, idx = ctx.shape(0), ctx.shape(1)
    b = ctx.attr("batch_dims")
    if x is None or idx is None or not idx or not isinstance(idx[-1], int):
        return [tt(ctx.dtype(0), None)]
    last = idx[-1]
    if b + last > len(x):
        raise ctx.fail(f"GatherND indices {fmt_shape(idx)} index {last} dims past batch_dims {b} of data {fmt_shape(x)}")
    return [tt(ctx.dtype(0), tuple(idx[:-1]) + tuple(x[b + last:]))]


_REDUCTIONS = ("none", "add", "mul", "max", "min")


@register("ScatterND", ["data", "indices", "updates"], ["output"], {"reduction": _str("none")})
def infer_scatter_nd(ctx: InferContext):
    check_dtype(ctx, 1, I64)
    if ctx.attr("reduction") not in _REDUCTIONS:
        raise ctx.fail(f"reduction must be one of {_REDUCTIONS}, got {ctx.attr('reduction')!r}")
    same_dtype(ctx, [0, 2])
    return [tt(ctx.dtype(0), ctx.shape(0))]


@register("ScatterElements", ["data", "indices", "updates"], ["output"], {"axis": int_attr(0), "reduction": _str("none")})
def infer_scatter_elements(ctx: InferContext):
    check_dtype(ctx, 1, IDX)
    if ctx.attr("reduction") not in _REDUCTIONS:
        raise ctx.fail(f"reduction must be one of {_REDUCTIONS}, got {ctx.attr('reduction')!r}")
    same_dtype(ctx, [0, 2])
    if ctx.shape(0) is not None:
        norm_axis(ctx, ctx.attr("axis"), len(ctx.shape(0)))
    return [tt(ctx.dtype(0), ctx.shape(0))]


# ---------------------------------------------------------------- Squeeze / Unsqueeze / Expand
@register("Squeeze", ["data", "axes?"], ["squeezed"])
def infer_squeeze(ctx: InferContext):
    """Without axes, every dim known to be 1 goes (rank unknown when a dim is symbolic)."""
    dt, x = ctx.dtype(0), ctx.shape(0)
    if ctx.has_input(1):
        check_dtype(ctx, 1, I64)
        axes = const_ints(ctx, 1, "axes")
        if axes is None:
            n = static_len(ctx, 1)
            return [tt(dt, None if x is None or n is None else fresh_shape(ctx, len(x) - n))]
    else:
        axes = None
    if x is None:
        return [tt(dt, None)]
    if axes is None:
        if any(isinstance(d, str) for d in x):
            return [tt(dt, None)]
        return [tt(dt, [d for d in x if d != 1])]
    axes = norm_axes(ctx, axes, len(x))
    for a in axes:
        if isinstance(x[a], int) and x[a] != 1:
            raise ctx.fail(f"Squeeze axis {a} of {fmt_shape(x)} is {x[a]}, not 1")
    return [tt(dt, [d for k, d in enumerate(x) if k not in axes])]


@register("Unsqueeze", ["data", "axes"], ["expanded"])
def infer_unsqueeze(ctx: InferContext):
    dt, x = ctx.dtype(0), ctx.shape(0)
    check_dtype(ctx, 1, I64)
    axes = const_ints(ctx, 1, "axes")
    if x is None:
        return [tt(dt, None)]
    if axes is None:
        n = static_len(ctx, 1)
        return [tt(dt, None if n is None else fresh_shape(ctx, len(x) + n))]
    r = len(x) + len(axes)
    axes = norm_axes(ctx, axes, r)
    it = iter(x)
    return [tt(dt, [1 if k in axes else next(it) for k in range(r)])]


@register("Expand", ["input", "shape"], ["output"])
def infer_expand(ctx: InferContext):
    """Bidirectional broadcast of the input with the shape (a 1 in the shape keeps the input dim)."""
    dt, x = ctx.dtype(0), ctx.shape(0)
    check_dtype(ctx, 1, I64)
    shape = const_ints(ctx, 1, "Expand shape")
    if shape is None:
        n = static_len(ctx, 1)
        return [tt(dt, None if x is None or n is None else fresh_shape(ctx, max(len(x), n)))]
    if any(d < 0 for d in shape):
        raise ctx.fail(f"Expand shape {shape} has a negative dim")
    return [tt(dt, broadcast(ctx, [x, tuple(shape)]))]


# ---------------------------------------------------------------- Shape / Size / Flatten
@register("Shape", ["data"], ["shape"], {"end": AttrSpec(AttrKind.INT), "start": int_attr(0)})
def infer_shape(ctx: InferContext):
    x = ctx.shape(0)
    if x is None:
        return [tt(DType.INT64, (ctx.fresh_dim(0, 0),))]
    r = len(x)
    start, end = ctx.attr("start"), ctx.attr("end")
    end = r if end is None else end
    start = min(max(start + r if start < 0 else start, 0), r)
    end = min(max(end + r if end < 0 else end, 0), r)
    return [tt(DType.INT64, (max(end - start, 0),))]


@register("Size", ["data"], ["size"])
def infer_size(ctx: InferContext):
    return [tt(DType.INT64, ())]


@register("Flatten", ["input"], ["output"], {"axis": int_attr(1)})
def infer_flatten(ctx: InferContext):
    dt, x = ctx.dtype(0), ctx.shape(0)
    if x is None:
        return [tt(dt, fresh_shape(ctx, 2))]
    axis = ctx.attr("axis")
    if not -len(x) <= axis <= len(x):
        raise ctx.fail(f"Flatten axis {axis} is out of range for rank {len(x)}")
    axis = axis + len(x) if axis < 0 else axis
    return [tt(dt, (prod_dims(ctx, x[:axis], 0, 0), prod_dims(ctx, x[axis:], 0, 1)))]


@register("Tile", ["input", "repeats"], ["output"])
def infer_tile(ctx: InferContext):
    dt, x = ctx.dtype(0), ctx.shape(0)
    check_dtype(ctx, 1, I64)
    reps = const_ints(ctx, 1, "repeats")
    if x is None:
        return [tt(dt, None if reps is None else fresh_shape(ctx, len(reps)))]
    if reps is None:
        return [tt(dt, fresh_shape(ctx, len(x)))]
    if len(reps) != len(x):
        raise ctx.fail(f"Tile repeats {reps} should have {len(x)} values for input {fmt_shape(x)}")
    if any(r < 0 for r in reps):
        raise ctx.fail(f"Tile repeats {reps} must not be negative")
    out = [d * r if isinstance(d, int) else d if r == 1 else 0 if r == 0 else ctx.fresh_dim(0, k)
           for k, (d, r) in enumerate(zip(x, reps))]
    return [tt(dt, out)]


@register("Pad", ["data", "pads", "constant_value?", "axes?"], ["output"], {"mode": _str("constant")})
def infer_pad(ctx: InferContext):
    dt, x = ctx.dtype(0), ctx.shape(0)
    if ctx.attr("mode") not in ("constant", "reflect", "edge", "wrap"):
        raise ctx.fail(f"Pad mode must be constant, reflect, edge or wrap, got {ctx.attr('mode')!r}")
    check_dtype(ctx, 1, I64)
    if ctx.has_input(2) and ctx.dtype(2) is not dt:
        raise ctx.fail(f"Pad constant_value dtype {ctx.dtype(2).short} differs from data's {dt.short}")
    if x is None:
        return [tt(dt, None)]
    r = len(x)
    pads = const_ints(ctx, 1, "pads")
    if ctx.has_input(3):
        check_dtype(ctx, 3, IDX)
        axes = const_ints(ctx, 3, "axes")
        if axes is None:
            return [tt(dt, fresh_shape(ctx, r))]
        axes = norm_axes(ctx, axes, r)
    else:
        axes = list(range(r))
    out = list(x)
    if pads is None:
        for a in axes:
            out[a] = ctx.fresh_dim(0, a)
        return [tt(dt, out)]
    n = len(axes)
    if len(pads) != 2 * n:
        raise ctx.fail(f"Pad pads {pads} should have {2 * n} values (2 per padded axis)")
    for j, a in enumerate(axes):
        total = pads[j] + pads[j + n]
        d = x[a]
        if isinstance(d, int):
            if d + total < 0:
                raise ctx.fail(f"Pad pads {pads} make axis {a} of {fmt_shape(x)} negative")
            out[a] = d + total
        elif pads[j] == 0 and pads[j + n] == 0:
            out[a] = d
        else:
            out[a] = ctx.fresh_dim(0, a)
    return [tt(dt, out)]


# ---------------------------------------------------------------- constants and ranges
@register("ConstantOfShape", ["input"], ["output"], {"value": AttrSpec(AttrKind.TENSOR)})
def infer_constant_of_shape(ctx: InferContext):
    value = ctx.attr("value")
    if value is not None and value.numel != 1:
        raise ctx.fail(f"ConstantOfShape value must hold one element, got shape {list(value.shape)}")
    dt = value.dtype if value is not None else DType.FLOAT32
    check_dtype(ctx, 0, I64)
    shape = const_ints(ctx, 0, "ConstantOfShape input")
    if shape is None:
        return [tt(dt, fresh_shape(ctx, static_len(ctx, 0)))]
    if any(d < 0 for d in shape):
        raise ctx.fail(f"ConstantOfShape shape {shape} has a negative dim")
    return [tt(dt, shape)]


@register("Range", ["start", "limit", "delta"], ["output"])
def infer_range(ctx: InferContext):
    """max(ceil((limit - start) / delta), 0) elements."""
    dt = same_dtype(ctx, [0, 1, 2])
    check_dtype(ctx, 0, F | frozenset({DType.INT16, DType.INT32, DType.INT64}))
    for i in range(3):
        s = ctx.shape(i)
        if s is not None and (len(s) > 1 or (len(s) == 1 and s[0] != 1)):
            raise ctx.fail(f"Range {ctx._input_name(i)} must be a scalar, got {fmt_shape(s)}")
    vals = [ctx.const(i) for i in range(3)]
    if any(v is None for v in vals):
        return [tt(dt, (ctx.fresh_dim(0, 0),))]
    start, limit, delta = (np.asarray(v).reshape(-1)[0] for v in vals)
    if delta == 0:
        raise ctx.fail("Range delta must not be 0")
    if dt.is_float:
        n = math.ceil((float(limit) - float(start)) / float(delta))
    else:
        n = -((int(start) - int(limit)) // int(delta))
    return [tt(dt, (max(n, 0),))]


@register("Constant", [], ["output"],
          {"value": AttrSpec(AttrKind.TENSOR), "value_float": AttrSpec(AttrKind.FLOAT),
           "value_floats": AttrSpec(AttrKind.FLOATS), "value_int": AttrSpec(AttrKind.INT),
           "value_ints": AttrSpec(AttrKind.INTS), "value_string": AttrSpec(AttrKind.STRING),
           "value_strings": AttrSpec(AttrKind.STRINGS)})
def infer_constant(ctx: InferContext):
    given = [k for k in ctx.schema.attrs if ctx.has_attr(k)]
    if len(given) != 1:
        raise ctx.fail(f"Constant needs exactly one value attribute, got {given or 'none'}")
    k = given[0]
    v = ctx.attr(k)
    if k == "value":
        return [v.type]
    kinds = {"value_float": (DType.FLOAT32, ()), "value_int": (DType.INT64, ()), "value_string": (DType.STRING, ()),
             "value_floats": (DType.FLOAT32, None), "value_ints": (DType.INT64, None),
             "value_strings": (DType.STRING, None)}
    dt, shape = kinds[k]
    return [tt(dt, shape if shape is not None else (len(v),))]


@register("EyeLike", ["input"], ["output"], {"dtype": AttrSpec(AttrKind.INT), "k": int_attr(0)})
def infer_eye_like(ctx: InferContext):
    code = ctx.attr("dtype")
    dt = DType.from_onnx(code) if code is not None else ctx.dtype(0)
    return [tt(dt, check_rank(ctx, 0, 2))]


# ---------------------------------------------------------------- elementwise selection and casts
@register("Where", ["condition", "X", "Y"], ["output"])
def infer_where(ctx: InferContext):
    check_dtype(ctx, 0, {DType.BOOL})
    dt = same_dtype(ctx, [1, 2])
    return [tt(dt, broadcast(ctx, [ctx.shape(0), ctx.shape(1), ctx.shape(2)]))]


@register("Cast", ["input"], ["output"], {"saturate": int_attr(1), "to": AttrSpec(AttrKind.INT, REQUIRED)})
def infer_cast(ctx: InferContext):
    """The dtype named by ``to`` (an ONNX TensorProto element type)."""
    try:
        dt = DType.from_onnx(ctx.attr("to"))
    except ValueError as e:
        raise ctx.fail(f"Cast to: {e}") from None
    return [tt(dt, ctx.shape(0))]


@register("CastLike", ["input", "target_type"], ["output"], {"saturate": int_attr(1)})
def infer_cast_like(ctx: InferContext):
    return [tt(ctx.dtype(1), ctx.shape(0))]


@register("Identity", ["input"], ["output"])
def infer_identity(ctx: InferContext):
    return [ctx.type(0)]


@register("Trilu", ["input", "k?"], ["output"], {"upper": int_attr(1)})
def infer_trilu(ctx: InferContext):
    if ctx.has_input(1):
        check_dtype(ctx, 1, I64)
    return [tt(ctx.dtype(0), check_rank(ctx, 0, at_least=2))]


@register("ReverseSequence", ["input", "sequence_lens"], ["Y"], {"batch_axis": int_attr(1), "time_axis": int_attr(0)})
def infer_reverse_sequence(ctx: InferContext):
    x = check_rank(ctx, 0, at_least=2)
    check_dtype(ctx, 1, I64)
    if x is not None:
        b, t = norm_axis(ctx, ctx.attr("batch_axis"), 2, "batch_axis"), norm_axis(ctx, ctx.attr("time_axis"), 2,
                                                                                  "time_axis")
        if b == t:
            raise ctx.fail("ReverseSequence batch_axis and time_axis must differ")
    return [tt(ctx.dtype(0), x)]


# ---------------------------------------------------------------- layout
@register("DepthToSpace", ["input"], ["output"], {"blocksize": AttrSpec(AttrKind.INT, REQUIRED), "mode": _str("DCR")})
def infer_depth_to_space(ctx: InferContext):
    """[N, C, H, W] -> [N, C / b^2, H * b, W * b]."""
    x = check_rank(ctx, 0, 4)
    b = ctx.attr("blocksize")
    if b < 1:
        raise ctx.fail(f"blocksize must be positive, got {b}")
    if ctx.attr("mode") not in ("DCR", "CRD"):
        raise ctx.fail(f"DepthToSpace mode must be DCR or CRD, got {ctx.attr('mode')!r}")
    if x is None:
        return [tt(ctx.dtype(0), fresh_shape(ctx, 4))]
    n, c, h, w = x
    if isinstance(c, int) and c % (b * b):
        raise ctx.fail(f"DepthToSpace channels {c} are not divisible by blocksize^2 = {b * b}")
    scale = lambda d, k, f: f(d) if isinstance(d, int) else (d if b == 1 else ctx.fresh_dim(0, k))  # noqa: E731
    return [tt(ctx.dtype(0), (n, scale(c, 1, lambda v: v // (b * b)), scale(h, 2, lambda v: v * b),
                              scale(w, 3, lambda v: v * b)))]


@register("SpaceToDepth", ["input"], ["output"], {"blocksize": AttrSpec(AttrKind.INT, REQUIRED)})
def infer_space_to_depth(ctx: InferContext):
    """[N, C, H, W] -> [N, C * b^2, H / b, W / b]."""
    x = check_rank(ctx, 0, 4)
    b = ctx.attr("blocksize")
    if b < 1:
        raise ctx.fail(f"blocksize must be positive, got {b}")
    if x is None:
        return [tt(ctx.dtype(0), fresh_shape(ctx, 4))]
    n, c, h, w = x
    for k, d in ((2, h), (3, w)):
        if isinstance(d, int) and d % b:
            raise ctx.fail(f"SpaceToDepth dim {k} ({d}) is not divisible by blocksize {b}")
    scale = lambda d, k, f: f(d) if isinstance(d, int) else (d if b == 1 else ctx.fresh_dim(0, k))  # noqa: E731
    return [tt(ctx.dtype(0), (n, scale(c, 1, lambda v: v * b * b), scale(h, 2, lambda v: v // b),
                              scale(w, 3, lambda v: v // b)))]


@register("OneHot", ["indices", "depth", "values"], ["output"], {"axis": int_attr(-1)})
def infer_one_hot(ctx: InferContext):
    """indices' shape with ``depth`` inserted at ``axis``; the dtype of ``values``."""
    check_dtype(ctx, 0, NUM)
    check_dtype(ctx, 1, NUM)
    v = ctx.shape(2)
    if v is not None and (len(v) != 1 or (isinstance(v[0], int) and v[0] != 2)):
        raise ctx.fail(f"OneHot values must be 1-d with 2 elements [off, on], got {fmt_shape(v)}")
    x = ctx.shape(0)
    if x is None:
        return [tt(ctx.dtype(2), None)]
    axis = norm_axis(ctx, ctx.attr("axis"), len(x), extra=1)
    depth = ctx.const(1)
    if depth is not None:
        if np.asarray(depth).size != 1:
            raise ctx.fail(f"OneHot depth must hold one value, got shape {list(np.shape(depth))}")
        dd: Dim = int(np.asarray(depth).reshape(-1)[0])
        if dd < 1:
            raise ctx.fail(f"OneHot depth must be positive, got {dd}")
    else:
        dd = ctx.fresh_dim(0, axis)
    out = list(x)
    out.insert(axis, dd)
    return [tt(ctx.dtype(2), out)]


@register("NonZero", ["X"], ["Y"])
def infer_nonzero(ctx: InferContext):
    """[rank, number of non-zeros]: the second dim depends on the data."""
    x = ctx.shape(0)
    return [tt(DType.INT64, (len(x) if x is not None else ctx.fresh_dim(0, 0), ctx.fresh_dim(0, 1)))]


@register("Compress", ["input", "condition"], ["output"], {"axis": AttrSpec(AttrKind.INT)})
def infer_compress(ctx: InferContext):
    """Data-dependent: the compressed axis (or the flattened input) gets a fresh dim."""
    check_dtype(ctx, 1, {DType.BOOL})
    x = ctx.shape(0)
    axis = ctx.attr("axis")
    if axis is None:
        return [tt(ctx.dtype(0), (ctx.fresh_dim(0, 0),))]
    if x is None:
        return [tt(ctx.dtype(0), None)]
    a = norm_axis(ctx, axis, len(x))
    out = list(x)
    out[a] = ctx.fresh_dim(0, a)
    return [tt(ctx.dtype(0), out)]


# ---------------------------------------------------------------- pattern kinds
set_traits(["Cast", "CastLike", "Identity"], kind=PatternKind.ELEMENTWISE)
set_traits(["Where"], kind=PatternKind.BROADCAST)
# A fixed map from output to input indices (data movement only).
set_traits(["Concat", "ConstantOfShape", "DepthToSpace", "Expand", "EyeLike", "Flatten", "Gather", "GatherElements",
            "GatherND", "OneHot", "Pad", "Range", "Reshape", "ReverseSequence", "Slice", "SpaceToDepth", "Split",
            "Squeeze", "Tile", "Transpose", "Trilu", "Unsqueeze"], kind=PatternKind.INJECTIVE)
# Data-dependent output sizes, scatters (one output element from several places), metadata.
set_traits(["Compress", "Constant", "NonZero", "ScatterElements", "ScatterND", "Shape", "Size"],
           kind=PatternKind.OPAQUE)


# Data movement and metadata compute nothing.
set_traits(["Cast", "CastLike", "Concat", "Constant", "ConstantOfShape", "DepthToSpace", "Expand", "EyeLike", "Flatten",
            "Gather", "GatherElements", "GatherND", "Identity", "NonZero", "OneHot", "Pad", "Range", "Reshape",
            "ScatterElements", "ScatterND", "Shape", "Size", "Slice", "SpaceToDepth", "Split", "Squeeze", "Tile",
            "Transpose", "Trilu", "Unsqueeze"], flops=flops.none)
