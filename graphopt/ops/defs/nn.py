"""Neural-network ops: MatMul/Gemm, convolution, pooling, normalization, softmax family,
Dropout, quantization."""

from __future__ import annotations

import math

from ...ir import AttrKind
from ...ir.types import Dim, DType, Shape, TensorType
from .. import flops
from ..registry import REQUIRED, AttrSpec, InferContext, PatternKind, register, set_traits
from ._shapes import (broadcast, check_dtype, check_rank, const_ints, fmt_shape, merge_dim, norm_axis, same_dtype,
                      tt)
from ._specs import F, F3, float_attr, int_attr, types

_AUTO_PADS = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")


def _ints(default=None) -> AttrSpec:
    return AttrSpec(AttrKind.INTS, default)


def _str(default) -> AttrSpec:
    return AttrSpec(AttrKind.STRING, default)


# ---------------------------------------------------------------- MatMul / Gemm
def matmul_shape(ctx: InferContext, a: Shape, b: Shape) -> Shape:
    """numpy.matmul's shape rule (1-d operands are promoted, then the added dim dropped)."""
    if a is None or b is None:
        return None
    if len(a) == 0 or len(b) == 0:
        raise ctx.fail(f"MatMul operands must not be scalars, got {fmt_shape(a)} x {fmt_shape(b)}")
    A = (1,) + tuple(a) if len(a) == 1 else tuple(a)
    B = tuple(b) + (1,) if len(b) == 1 else tuple(b)
    merge_dim(ctx, A[-1], B[-2], f"MatMul inner dims differ ({fmt_shape(a)} x {fmt_shape(b)})")
    batch = broadcast(ctx, [A[:-2], B[:-2]])
    out = list(batch) + [A[-2], B[-1]]  # type: ignore[arg-type]
    if len(b) == 1:
        out.pop(-1)
    if len(a) == 1:
        out.pop(-2 if len(b) != 1 else -1)
    return tuple(out)


@register("MatMul", ["A", "B"], ["Y"])
def infer_matmul(ctx: InferContext):
    dt = same_dtype(ctx, [0, 1])
    check_dtype(ctx, 0, F | types("i32 i64 u32 u64"))
    return [tt(dt, matmul_shape(ctx, ctx.shape(0), ctx.shape(1)))]


@register("MatMulInteger", ["A", "B", "a_zero_point?", "b_zero_point?"], ["Y"])
def infer_matmul_integer(ctx: InferContext):
    check_dtype(ctx, 0, types("i8 u8"))
    check_dtype(ctx, 1, types("i8 u8"))
    return [tt(DType.INT32, matmul_shape(ctx, ctx.shape(0), ctx.shape(1)))]


@register("Gemm", ["A", "B", "C?"], ["Y"], {"alpha": float_attr(1.0), "beta": float_attr(1.0), "transA": int_attr(0),
                                             "transB": int_attr(0)})
def infer_gemm(ctx: InferContext):
    """Y[M, N] = A'[M, K] B'[K, N] (+ C broadcast unidirectionally to [M, N])."""
    dt = same_dtype(ctx, [0, 1, 2])
    check_dtype(ctx, 0, F | types("i32 i64 u32 u64"))
    a, b = check_rank(ctx, 0, 2), check_rank(ctx, 1, 2)
    if a is None or b is None:
        return [_gemm_partial(ctx, dt, a, b)]
    m, ka = (a[1], a[0]) if ctx.attr("transA") else (a[0], a[1])
    kb, n = (b[1], b[0]) if ctx.attr("transB") else (b[0], b[1])
    merge_dim(ctx, ka, kb, f"Gemm inner dims differ (A {fmt_shape(a)}, B {fmt_shape(b)})")
    if ctx.has_input(2) and ctx.shape(2) is not None:
        c = ctx.shape(2)
        if len(c) > 2:
            raise ctx.fail(f"Gemm C must have rank <= 2, got {fmt_shape(c)}")
        out = broadcast(ctx, [(m, n), c])
        for want, got in zip((m, n), out):  # type: ignore[arg-type]
            if isinstance(want, int) and got != want:
                raise ctx.fail(f"Gemm C {fmt_shape(c)} does not broadcast to [{m}, {n}]")
    return [tt(dt, (m, n))]


def _gemm_partial(ctx: InferContext, dt: DType, a: Shape, b: Shape) -> TensorType:
    m = ctx.fresh_dim(0, 0) if a is None else (a[1] if ctx.attr("transA") else a[0])
    n = ctx.fresh_dim(0, 1) if b is None else (b[0] if ctx.attr("transB") else b[1])
    return tt(dt, (m, n))


# ---------------------------------------------------------------- conv / pool
def _spatial_attrs(ctx: InferContext, n: int, kernel: list[int]):
    strides = list(ctx.attr("strides") or [1] * n)
    dil = list(ctx.attr("dilations") or [1] * n) if "dilations" in ctx.schema.attrs else [1] * n
    pads = list(ctx.attr("pads") or [0] * (2 * n))
    auto_pad = ctx.attr("auto_pad")
    if auto_pad not in _AUTO_PADS:
        raise ctx.fail(f"auto_pad must be one of {', '.join(_AUTO_PADS)}, got {auto_pad!r}")
    if len(kernel) != n:
        raise ctx.fail(f"kernel_shape {kernel} has {len(kernel)} dims, the input has {n} spatial dims")
    if len(strides) != n:
        raise ctx.fail(f"strides {strides} should have {n} values")
    if len(dil) != n:
        raise ctx.fail(f"dilations {dil} should have {n} values")
    if len(pads) != 2 * n:
        raise ctx.fail(f"pads {pads} should have {2 * n} values")
    if ctx.has_attr("pads") and auto_pad != "NOTSET":
        raise ctx.fail(f"pads and auto_pad={auto_pad} cannot be used together")
    if any(s < 1 for s in strides) or any(d < 1 for d in dil) or any(k < 1 for k in kernel):
        raise ctx.fail("kernel_shape, strides and dilations must be positive")
    if any(p < 0 for p in pads):
        raise ctx.fail(f"pads {pads} must not be negative")
    return strides, dil, pads, auto_pad


def window_out_dims(ctx: InferContext, in_dims, kernel, strides, dil, pads, auto_pad, ceil_mode: bool,
                    output: int = 0, first_axis: int = 2) -> list[Dim]:
    """Spatial output dims of a sliding window (ONNX's conv/pool shape rule)."""
    n = len(kernel)
    out: list[Dim] = []
    for i in range(n):
        d, k, s = in_dims[i], kernel[i], strides[i]
        ek = (k - 1) * dil[i] + 1
        axis = first_axis + i
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            if isinstance(d, int):
                residual = d % s if s > 1 else 0
                total = max(ek - s if residual == 0 else ek - residual, 0)
            else:
                out.append(d if s == 1 else ctx.fresh_dim(output, axis))
                continue
        elif auto_pad == "VALID":
            total = 0
        else:
            total = pads[i] + pads[i + n]
        if not isinstance(d, int):
            out.append(d if s == 1 and total - ek + 1 == 0 else ctx.fresh_dim(output, axis))
            continue
        span = d + total - ek
        if span < 0:
            raise ctx.fail(f"the window ({ek} with dilation) is larger than the padded input ({d + total}) "
                           f"on spatial axis {i}")
        o = -(-span // s) if ceil_mode else span // s
        if ceil_mode and auto_pad == "NOTSET" and o * s >= d + pads[i]:
            o -= 1  # the last window must start inside the input or the left padding
        out.append(o + 1)
    return out


_CONV_ATTRS = {"auto_pad": _str("NOTSET"), "dilations": _ints(), "group": int_attr(1), "kernel_shape": _ints(),
               "pads": _ints(), "strides": _ints()}


@register("Conv", ["X", "W", "B?"], ["Y"], _CONV_ATTRS)
def infer_conv(ctx: InferContext):
    dt = same_dtype(ctx, [0, 1, 2])
    check_dtype(ctx, 0, F)
    x, w = check_rank(ctx, 0, at_least=3), check_rank(ctx, 1, at_least=3)
    if x is None:
        if w is None:
            return [tt(dt, None)]
        x = (ctx.fresh_dim(0, 0), ctx.fresh_dim(0, 1)) + tuple(ctx.fresh_dim(0, 2 + i) for i in range(len(w) - 2))
    n = len(x) - 2
    if w is not None and len(w) != len(x):
        raise ctx.fail(f"Conv X {fmt_shape(x)} and W {fmt_shape(w)} differ in rank")
    kernel = list(ctx.attr("kernel_shape") or [])
    if not kernel:
        if w is None or not all(isinstance(k, int) for k in w[2:]):
            return [tt(dt, (x[0], ctx.fresh_dim(0, 1) if w is None else w[0])
                       + tuple(ctx.fresh_dim(0, 2 + i) for i in range(n)))]
        kernel = list(w[2:])  # type: ignore[arg-type]
    group = ctx.attr("group")
    if group < 1:
        raise ctx.fail(f"group must be positive, got {group}")
    if w is not None:
        if isinstance(x[1], int) and isinstance(w[1], int) and x[1] != w[1] * group:
            raise ctx.fail(f"Conv input channels {x[1]} != W channels {w[1]} x group {group}")
        if isinstance(w[0], int) and w[0] % group:
            raise ctx.fail(f"Conv output channels {w[0]} are not divisible by group {group}")
    if ctx.has_input(2) and ctx.shape(2) is not None:
        bshape = ctx.shape(2)
        if len(bshape) != 1:
            raise ctx.fail(f"Conv B must be 1-d, got {fmt_shape(bshape)}")
        if w is not None:
            merge_dim(ctx, bshape[0], w[0], "Conv B length differs from the output channels")
    strides, dil, pads, auto_pad = _spatial_attrs(ctx, n, kernel)
    spatial = window_out_dims(ctx, x[2:], kernel, strides, dil, pads, auto_pad, False)
    cout = w[0] if w is not None else ctx.fresh_dim(0, 1)
    return [tt(dt, (x[0], cout, *spatial))]


@register("ConvTranspose", ["X", "W", "B?"], ["Y"],
          {**_CONV_ATTRS, "output_padding": _ints(), "output_shape": _ints()})
def infer_conv_transpose(ctx: InferContext):
    """out = stride*(in-1) + output_padding + (k-1)*dilation + 1 - pads; SAME: in*stride;
    output_shape (spatial dims) wins when given."""
    dt = same_dtype(ctx, [0, 1, 2])
    check_dtype(ctx, 0, F)
    x, w = check_rank(ctx, 0, at_least=3), check_rank(ctx, 1, at_least=3)
    if x is None:
        return [tt(dt, None)]
    n = len(x) - 2
    group = ctx.attr("group")
    cout: Dim = ctx.fresh_dim(0, 1)
    if w is not None:
        if len(w) != len(x):
            raise ctx.fail(f"ConvTranspose X {fmt_shape(x)} and W {fmt_shape(w)} differ in rank")
        merge_dim(ctx, x[1], w[0], "ConvTranspose input channels differ from W's first dim")
        if isinstance(w[1], int):
            cout = w[1] * group
    kernel = list(ctx.attr("kernel_shape") or [])
    if not kernel:
        if w is None or not all(isinstance(k, int) for k in w[2:]):
            return [tt(dt, (x[0], cout) + tuple(ctx.fresh_dim(0, 2 + i) for i in range(n)))]
        kernel = list(w[2:])  # type: ignore[arg-type]
    strides, dil, pads, auto_pad = _spatial_attrs(ctx, n, kernel)
    out_pad = list(ctx.attr("output_padding") or [0] * n)
    if len(out_pad) != n:
        raise ctx.fail(f"output_padding {out_pad} should have {n} values")
    out_shape = list(ctx.attr("output_shape") or [])
    if out_shape:
        if len(out_shape) == n + 2:
            out_shape = out_shape[2:]
        if len(out_shape) != n:
            raise ctx.fail(f"output_shape {out_shape} should have {n} values")
        return [tt(dt, (x[0], cout, *out_shape))]
    spatial: list[Dim] = []
    for i in range(n):
        d, s = x[2 + i], strides[i]
        if not isinstance(d, int):
            spatial.append(d if s == 1 and auto_pad in ("SAME_UPPER", "SAME_LOWER") else ctx.fresh_dim(0, 2 + i))
        elif auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            spatial.append(d * s)
        else:
            total = 0 if auto_pad == "VALID" else pads[i] + pads[i + n]
            o = s * (d - 1) + out_pad[i] + (kernel[i] - 1) * dil[i] + 1 - total
            if o < 0:
                raise ctx.fail(f"ConvTranspose output dim {o} on spatial axis {i} is negative")
            spatial.append(o)
    return [tt(dt, (x[0], cout, *spatial))]


_POOL_ATTRS = {"auto_pad": _str("NOTSET"), "ceil_mode": int_attr(0), "dilations": _ints(),
               "kernel_shape": AttrSpec(AttrKind.INTS, REQUIRED), "pads": _ints(), "strides": _ints()}


def _pool_shape(ctx: InferContext) -> Shape:
    x = check_rank(ctx, 0, at_least=3)
    if x is None:
        return None
    n = len(x) - 2
    kernel = list(ctx.attr("kernel_shape"))
    strides, dil, pads, auto_pad = _spatial_attrs(ctx, n, kernel)
    spatial = window_out_dims(ctx, x[2:], kernel, strides, dil, pads, auto_pad, bool(ctx.attr("ceil_mode")))
    return (x[0], x[1], *spatial)


@register("MaxPool", ["X"], ["Y", "Indices?"], {**_POOL_ATTRS, "storage_order": int_attr(0)})
def infer_maxpool(ctx: InferContext):
    dt = check_dtype(ctx, 0, F | types("i8 u8"))
    shape = _pool_shape(ctx)
    return [tt(dt, shape), tt(DType.INT64, shape)]


@register("AveragePool", ["X"], ["Y"], {**_POOL_ATTRS, "count_include_pad": int_attr(0)})
def infer_averagepool(ctx: InferContext):
    return [tt(check_dtype(ctx, 0, F), _pool_shape(ctx))]


@register("LpPool", ["X"], ["Y"], {**_POOL_ATTRS, "p": int_attr(2)})
def infer_lppool(ctx: InferContext):
    return [tt(check_dtype(ctx, 0, F), _pool_shape(ctx))]


def _global_pool(ctx: InferContext):
    dt = check_dtype(ctx, 0, F)
    x = check_rank(ctx, 0, at_least=3)
    return [tt(dt, None if x is None else (x[0], x[1]) + (1,) * (len(x) - 2))]


register("GlobalAveragePool", ["X"], ["Y"])(_global_pool)
register("GlobalMaxPool", ["X"], ["Y"])(_global_pool)
register("GlobalLpPool", ["X"], ["Y"], {"p": int_attr(2)})(_global_pool)


@register("MaxUnpool", ["X", "I", "output_shape?"], ["output"],
          {"kernel_shape": AttrSpec(AttrKind.INTS, REQUIRED), "pads": _ints(), "strides": _ints()})
def infer_maxunpool(ctx: InferContext):
    """out = (in-1)*stride + kernel - pads, unless the output_shape input gives it."""
    dt = check_dtype(ctx, 0, F)
    x = check_rank(ctx, 0, at_least=3)
    if ctx.has_input(2):
        shape = const_ints(ctx, 2, "output_shape")
        if shape is not None:
            return [tt(dt, shape)]
        return [tt(dt, None if x is None else tuple(ctx.fresh_dim(0, k) for k in range(len(x))))]
    if x is None:
        return [tt(dt, None)]
    n = len(x) - 2
    kernel = list(ctx.attr("kernel_shape"))
    strides = list(ctx.attr("strides") or [1] * n)
    pads = list(ctx.attr("pads") or [0] * (2 * n))
    if len(kernel) != n or len(strides) != n or len(pads) != 2 * n:
        raise ctx.fail(f"MaxUnpool kernel_shape/strides/pads do not fit {n} spatial dims")
    spatial = [(d - 1) * strides[i] + kernel[i] - pads[i] - pads[i + n] if isinstance(d, int)
               else ctx.fresh_dim(0, 2 + i) for i, d in enumerate(x[2:])]
    return [tt(dt, (x[0], x[1], *spatial))]


# ---------------------------------------------------------------- normalization
def _channel_param(ctx: InferContext, i: int, c: Dim, what: str) -> None:
    s = ctx.shape(i) if ctx.has_input(i) else None
    if s is None:
        return
    if len(s) != 1:
        raise ctx.fail(f"{what} must be 1-d, got {fmt_shape(s)}")
    merge_dim(ctx, s[0], c, f"{what} length differs from the channel count")


@register("BatchNormalization", ["X", "scale", "B", "input_mean", "input_var"],
          ["Y", "running_mean?", "running_var?"],
          {"epsilon": float_attr(1e-5), "momentum": float_attr(0.9), "training_mode": int_attr(0)})
def infer_batchnorm(ctx: InferContext):
    dt = check_dtype(ctx, 0, F)
    x = check_rank(ctx, 0, at_least=1)
    if x is not None and len(x) >= 2:
        for i, nm in ((1, "scale"), (2, "B"), (3, "input_mean"), (4, "input_var")):
            _channel_param(ctx, i, x[1], f"BatchNormalization {nm}")
    if ctx.num_outputs > 1 and not ctx.attr("training_mode"):
        raise ctx.fail("BatchNormalization running_mean/running_var outputs need training_mode=1")
    c = (x[1],) if x is not None and len(x) >= 2 else None
    stat_dt = ctx.dtype(3)
    return [tt(dt, x), tt(stat_dt, c), tt(stat_dt, c)]


@register("InstanceNormalization", ["input", "scale", "B"], ["output"], {"epsilon": float_attr(1e-5)})
def infer_instancenorm(ctx: InferContext):
    dt = same_dtype(ctx, [0, 1, 2])
    check_dtype(ctx, 0, F3)
    x = check_rank(ctx, 0, at_least=3)
    if x is not None:
        _channel_param(ctx, 1, x[1], "InstanceNormalization scale")
        _channel_param(ctx, 2, x[1], "InstanceNormalization B")
    return [tt(dt, x)]


@register("LayerNormalization", ["X", "Scale", "B?"], ["Y", "Mean?", "InvStdDev?"],
          {"axis": int_attr(-1), "epsilon": float_attr(1e-5), "stash_type": int_attr(1)})
def infer_layernorm(ctx: InferContext):
    """Mean and InvStdDev keep the dims before ``axis`` and are 1 from it on (stash_type dtype)."""
    dt = same_dtype(ctx, [0, 1, 2])
    check_dtype(ctx, 0, F)
    x = ctx.shape(0)
    stats: Shape = None
    if x is not None:
        axis = norm_axis(ctx, ctx.attr("axis"), len(x))
        stats = tuple(x[:axis]) + (1,) * (len(x) - axis)
        for i in (1, 2):
            if ctx.has_input(i) and ctx.shape(i) is not None:
                s = ctx.shape(i)
                b = broadcast(ctx, [x[axis:], s])
                if len(b) != len(x) - axis:  # type: ignore[arg-type]
                    raise ctx.fail(f"LayerNormalization {ctx._input_name(i)} {fmt_shape(s)} does not broadcast "
                                   f"to the normalized dims {fmt_shape(x[axis:])}")
    stash = DType.from_onnx(ctx.attr("stash_type"))
    return [tt(dt, x), tt(stash, stats), tt(stash, stats)]


@register("GroupNormalization", ["X", "scale", "bias"], ["Y"],
          {"epsilon": float_attr(1e-5), "num_groups": AttrSpec(AttrKind.INT, REQUIRED), "stash_type": int_attr(1)})
def infer_groupnorm(ctx: InferContext):
    dt = same_dtype(ctx, [0, 1, 2])
    check_dtype(ctx, 0, F)
    x = check_rank(ctx, 0, at_least=2)
    g = ctx.attr("num_groups")
    if g < 1:
        raise ctx.fail(f"num_groups must be positive, got {g}")
    if x is not None:
        if isinstance(x[1], int) and x[1] % g:
            raise ctx.fail(f"GroupNormalization channels {x[1]} are not divisible by num_groups {g}")
        _channel_param(ctx, 1, x[1], "GroupNormalization scale")
        _channel_param(ctx, 2, x[1], "GroupNormalization bias")
    return [tt(dt, x)]


@register("LRN", ["X"], ["Y"], {"alpha": float_attr(0.0001), "beta": float_attr(0.75), "bias": float_attr(1.0),
                                "size": AttrSpec(AttrKind.INT, REQUIRED)})
def infer_lrn(ctx: InferContext):
    dt = check_dtype(ctx, 0, F)
    return [tt(dt, check_rank(ctx, 0, at_least=3))]


@register("LpNormalization", ["input"], ["output"], {"axis": int_attr(-1), "p": int_attr(2)})
def infer_lpnorm(ctx: InferContext):
    dt = check_dtype(ctx, 0, F3)
    if ctx.shape(0) is not None:
        norm_axis(ctx, ctx.attr("axis"), len(ctx.shape(0)))
    if ctx.attr("p") not in (1, 2):
        raise ctx.fail(f"LpNormalization p must be 1 or 2, got {ctx.attr('p')}")
    return [tt(dt, ctx.shape(0))]


@register("MeanVarianceNormalization", ["X"], ["Y"], {"axes": _ints((0, 2, 3))})
def infer_mvn(ctx: InferContext):
    dt = check_dtype(ctx, 0, F)
    return [tt(dt, ctx.shape(0))]


@register("Dropout", ["data", "ratio?", "training_mode?"], ["output", "mask?"], {"seed": AttrSpec(AttrKind.INT)})
def infer_dropout(ctx: InferContext):
    dt = check_dtype(ctx, 0, F)
    if ctx.has_input(2) and ctx.dtype(2) is not DType.BOOL:
        raise ctx.fail(f"Dropout training_mode must be bool, got {ctx.dtype(2).short}")
    return [tt(dt, ctx.shape(0)), tt(DType.BOOL, ctx.shape(0))]


# In training mode Dropout draws a fresh mask each run: two Dropouts of one input differ.
set_traits(["Dropout"], deterministic=False)


def _softmax_like(ctx: InferContext):
    dt = check_dtype(ctx, 0, F)
    if ctx.shape(0) is not None:
        norm_axis(ctx, ctx.attr("axis"), max(len(ctx.shape(0)), 1))
    return [tt(dt, ctx.shape(0))]


for _op in ("Softmax", "LogSoftmax", "Hardmax"):
    register(_op, ["input"], ["output"], {"axis": int_attr(-1)})(_softmax_like)


# ---------------------------------------------------------------- quantization
def _check_qparam(ctx: InferContext, i: int, x: Shape, axis: int, block: int, what: str) -> None:
    s = ctx.shape(i) if ctx.has_input(i) else None
    if s is None or x is None or len(s) == 0 or (len(s) == 1 and s[0] == 1 and block == 0):
        return
    if block == 0:
        if len(s) != 1:
            raise ctx.fail(f"{what} must be a scalar or 1-d (per-axis), got {fmt_shape(s)}")
        a = norm_axis(ctx, axis, len(x))
        merge_dim(ctx, s[0], x[a], f"{what} length differs from the input's dim {a}")
    elif len(s) != len(x):
        raise ctx.fail(f"blocked {what} must have the input's rank, got {fmt_shape(s)}")


@register("QuantizeLinear", ["x", "y_scale", "y_zero_point?"], ["y"],
          {"axis": int_attr(1), "block_size": int_attr(0), "output_dtype": int_attr(0), "saturate": int_attr(1)})
def infer_quantize(ctx: InferContext):
    """The zero point's dtype, else output_dtype, else u8."""
    check_dtype(ctx, 0, F | types("i32"))
    x = ctx.shape(0)
    axis, block = ctx.attr("axis"), ctx.attr("block_size")
    _check_qparam(ctx, 1, x, axis, block, "y_scale")
    code = ctx.attr("output_dtype")
    if ctx.has_input(2):
        dt = ctx.dtype(2)
        if code and DType.from_onnx(code) is not dt:
            raise ctx.fail(f"output_dtype {code} differs from the zero point's dtype {dt.short}")
    else:
        dt = DType.from_onnx(code) if code else DType.UINT8
    if dt not in types("i4 u4 i8 u8 i16 u16"):
        raise ctx.fail(f"QuantizeLinear cannot produce {dt.short}")
    return [tt(dt, x)]


@register("DequantizeLinear", ["x", "x_scale", "x_zero_point?"], ["y"], {"axis": int_attr(1), "block_size": int_attr(0)})
def infer_dequantize(ctx: InferContext):
    """The scale's dtype."""
    x = ctx.shape(0)
    if ctx.has_input(2) and ctx.dtype(2) is not ctx.dtype(0):
        raise ctx.fail(f"x_zero_point dtype {ctx.dtype(2).short} differs from x's {ctx.dtype(0).short}")
    _check_qparam(ctx, 1, x, ctx.attr("axis"), ctx.attr("block_size"), "x_scale")
    return [tt(check_dtype(ctx, 1, F), x)]


@register("DynamicQuantizeLinear", ["x"], ["y", "y_scale", "y_zero_point"])
def infer_dynamic_quantize(ctx: InferContext):
    """u8 data with the float32 scalar scale and u8 scalar zero point of x's range
    (stretched to hold 0): ``s = (max(0, max x) - min(0, min x)) / 255``."""
    check_dtype(ctx, 0, types("f32"))
    return [tt(DType.UINT8, ctx.shape(0)), tt(DType.FLOAT32, ()), tt(DType.UINT8, ())]


# ---------------------------------------------------------------- pattern kinds
# Anchors: an elementwise epilogue (bias, activation, residual) fuses into their output.
set_traits(["AveragePool", "Conv", "ConvTranspose", "Gemm", "GlobalAveragePool", "GlobalLpPool", "GlobalMaxPool", "LpPool",
            "MatMul", "MatMulInteger", "MaxPool"], kind=PatternKind.OUT_FUSABLE)
# Per-channel affine maps (inference BatchNorm, quantize with a per-axis scale).
set_traits(["BatchNormalization", "DequantizeLinear", "QuantizeLinear"], kind=PatternKind.BROADCAST)
# A whole-tensor reduction (its range) before the elementwise quantization.
set_traits(["DynamicQuantizeLinear"], kind=PatternKind.OPAQUE)
set_traits(["Dropout"], kind=PatternKind.ELEMENTWISE)
# A reduction over rows followed by elementwise work on the same rows.
set_traits(["GroupNormalization", "Hardmax", "InstanceNormalization", "LayerNormalization", "LogSoftmax",
            "LpNormalization", "MeanVarianceNormalization", "Softmax"], kind=PatternKind.REDUCTION)
set_traits(["LRN", "MaxUnpool"], kind=PatternKind.OPAQUE)


# ---------------------------------------------------------------- FLOPs
def _matmul_flops(site: flops.FlopSite):
    """Two per multiply-accumulate: M*N outputs, K each."""
    a, out = site.input(0), site.output()
    if a is None or out is None:
        return None
    return 2 * flops.numel(out) * (a[-1] if len(a) >= 1 else 1)


def _gemm_flops(site: flops.FlopSite):
    a, out = site.input(0), site.output()
    if a is None or out is None:
        return None
    k = a[0] if site.node.attr("transA", 0) else a[-1]
    return 2 * flops.numel(out) * k + flops.bias(site, 2)


def _conv_flops(site: flops.FlopSite):
    """Each output element: C_in/group * kernel multiply-accumulates."""
    w, out = site.input(1), site.output()
    if w is None or out is None:
        return None
    return 2 * flops.numel(out) * math.prod(w[1:]) + flops.bias(site, 2)


def _conv_transpose_flops(site: flops.FlopSite):
    """Each input element multiplies C_out/group * kernel weights (W is [C_in, C_out/group, k...])."""
    x, w, out = site.input(0), site.input(1), site.output()
    if x is None or w is None or out is None:
        return None
    return 2 * flops.numel(x) * math.prod(w[1:]) + flops.bias(site, 2)


def _pool_flops(site: flops.FlopSite):
    """One per window element of each output."""
    out = site.output()
    if out is None:
        return None
    k = site.node.attr("kernel_shape", ())
    return flops.numel(out) * (math.prod(k) if k else 1)


set_traits(["MatMul", "MatMulInteger"], flops=_matmul_flops)
set_traits(["Gemm"], flops=_gemm_flops)
set_traits(["Conv"], flops=_conv_flops)
set_traits(["ConvTranspose"], flops=_conv_transpose_flops)
set_traits(["AveragePool", "LpPool", "MaxPool"], flops=_pool_flops)
set_traits(["GlobalAveragePool", "GlobalMaxPool", "LpNormalization"], flops=flops.input_elements)
set_traits(["Dropout"], flops=flops.none)
for _cost, _ops in [(8, ["GroupNormalization", "InstanceNormalization", "LayerNormalization"]), (6, ["LRN"]),
                    (5, ["LogSoftmax", "Softmax"]), (2, ["BatchNormalization"])]:
    set_traits(_ops, flops=flops.per_element(_cost))
