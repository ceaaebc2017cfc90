"""Shape helpers shared by the op definitions: broadcasting over int/symbolic dims, axis
normalization, constant shape-like inputs, products of dims."""

from __future__ import annotations

from typing import Iterable, Optional, Sequence

import numpy as np

from ...ir.types import Dim, DType, Shape, TensorType
from ..registry import InferContext, InferError
from . import _dtypes


def fmt_shape(shape: Shape) -> str:
    return "[...]" if shape is None else "[" + ", ".join(str(d) for d in shape) + "]"


def is_int(d: Dim) -> bool:
    return isinstance(d, int)


def broadcast_dim(ctx: InferContext, dims: Sequence[Dim], output: int, axis: int) -> Dim:
    """One output dim of a multidirectional broadcast (raises if two ints > 1 differ)."""
    ints = {d for d in dims if isinstance(d, int) and d != 1}
    if len(ints) > 1:
        raise ctx.fail(f"dims {' vs '.join(str(d) for d in sorted(ints))} cannot be broadcast")
    if ints:
        return ints.pop()
    syms = {d for d in dims if isinstance(d, str)}
    if not syms:
        return 1
    if len(syms) == 1:
        return syms.pop()
    return ctx.fresh_dim(output, axis)


def broadcast(ctx: InferContext, shapes: Sequence[Shape], output: int = 0) -> Shape:
    """Numpy-style multidirectional broadcast of shapes; None when any rank is unknown."""
    if any(s is None for s in shapes):
        return None
    rank = max((len(s) for s in shapes), default=0)  # type: ignore[arg-type]
    out: list[Dim] = []
    for k in range(rank):
        dims = [s[len(s) - rank + k] for s in shapes if len(s) - rank + k >= 0]  # type: ignore[arg-type]
        try:
            out.append(broadcast_dim(ctx, dims, output, k))
        except InferError:
            raise ctx.fail("incompatible broadcast: shapes " + ", ".join(fmt_shape(s) for s in shapes)
                           + f" differ at output axis {k}") from None
    return tuple(out)


def norm_axis(ctx: InferContext, axis: int, rank: int, what: str = "axis", extra: int = 0) -> int:
    """``axis`` in [-rank-extra, rank+extra) made non-negative (extra=1 for insert positions)."""
    r = rank + extra
    if not -r <= axis < r:
        raise ctx.fail(f"{what} {axis} is out of range for rank {rank}")
    return axis + r if axis < 0 else axis


def norm_axes(ctx: InferContext, axes: Iterable[int], rank: int, what: str = "axes") -> list[int]:
    out = [norm_axis(ctx, int(a), rank, what) for a in axes]
    if len(set(out)) != len(out):
        raise ctx.fail(f"{what} {list(axes)} repeat an axis")
    return out


def const_ints(ctx: InferContext, i: int, what: str = "") -> Optional[list[int]]:
    """A constant 0-d/1-d integer input as a list of ints, or None when not constant."""
    if not ctx.has_input(i):
        return None
    v = ctx.const(i)
    if v is None:
        return None
    v = np.asarray(v)
    if v.ndim > 1:
        raise ctx.fail(f"{what or 'input ' + str(i)} must be 0-d or 1-d, got shape {list(v.shape)}")
    if v.dtype.kind not in "iu":
        raise ctx.fail(f"{what or 'input ' + str(i)} must be an integer tensor, got {v.dtype}")
    return [int(x) for x in v.reshape(-1)]


def static_len(ctx: InferContext, i: int) -> Optional[int]:
    """The length of a 1-d input when its shape says it, else None."""
    s = ctx.shape(i)
    if s is None:
        return None
    if len(s) == 0:
        return 1
    if len(s) != 1:
        raise ctx.fail(f"input {i} ({ctx._input_name(i)}) must be 1-d, got shape {fmt_shape(s)}")
    return s[0] if isinstance(s[0], int) else None


def prod_dims(ctx: InferContext, dims: Sequence[Dim], output: int, axis: int) -> Dim:
    """The product of dims: an int, the one symbol among ones, or a fresh symbol."""
    syms = [d for d in dims if isinstance(d, str)]
    n = 1
    for d in dims:
        if isinstance(d, int):
            n *= d
    if not syms:
        return n
    if n == 0:
        return 0
    if len(syms) == 1 and n == 1:
        return syms[0]
    return ctx.fresh_dim(output, axis)


def merge_dim(ctx: InferContext, a: Dim, b: Dim, what: str) -> Dim:
    """Two dims that must be equal: the int when one is known; raises on two different ints."""
    if isinstance(a, int) and isinstance(b, int):
        if a != b:
            raise ctx.fail(f"{what}: {a} != {b}")
        return a
    return a if isinstance(a, int) else b


def check_rank(ctx: InferContext, i: int, *ranks: int, at_least: Optional[int] = None) -> Shape:
    s = ctx.shape(i)
    if s is None:
        return None
    if ranks and len(s) not in ranks:
        want = " or ".join(str(r) for r in ranks)
        raise ctx.fail(f"input {i} ({ctx._input_name(i)}) must have rank {want}, got {fmt_shape(s)}")
    if at_least is not None and len(s) < at_least:
        raise ctx.fail(f"input {i} ({ctx._input_name(i)}) must have rank >= {at_least}, got {fmt_shape(s)}")
    return s


def check_dtype(ctx: InferContext, i: int, allowed: Iterable[DType], what: str = "") -> DType:
    dt = ctx.dtype(i)
    allowed = frozenset(allowed)
    if dt not in allowed:
        kinds = ("float" if allowed == _dtypes.FLOATS else "integer" if allowed == _dtypes.INTS
                 else "bool" if allowed == {DType.BOOL} else "numeric" if allowed == _dtypes.NUMERIC
                 else ", ".join(sorted(d.short for d in allowed)))
        raise ctx.fail(f"{what or ctx.schema.op_type} input {i} ({ctx._input_name(i)}) must be {kinds}, got {dt.short}")
    return dt


def same_dtype(ctx: InferContext, indices: Sequence[int]) -> DType:
    """The common dtype of the given (present) inputs; raises when they differ."""
    present = [i for i in indices if ctx.has_input(i)]
    dts = [ctx.dtype(i) for i in present]
    for i, d in zip(present[1:], dts[1:]):
        if d is not dts[0]:
            raise ctx.fail(f"input dtypes differ: input {present[0]} is {dts[0].short}, input {i} is {d.short}")
    return dts[0]


def fresh_shape(ctx: InferContext, rank: Optional[int], output: int = 0) -> Shape:
    return None if rank is None else tuple(ctx.fresh_dim(output, k) for k in range(rank))


def tt(dtype: DType, shape: Shape) -> TensorType:
    return TensorType(dtype, None if shape is None else tuple(shape))
