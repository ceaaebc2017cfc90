"""More lowerings (registered into `codegen.lowering`'s table): TopK, Resize, GatherND,
ScatterND, ScatterElements, OneHot, GroupNormalization, QuantizeLinear, DequantizeLinear,
EyeLike, LpPool, GlobalLpPool, ReverseSequence, MatMulInteger, Compress, NonZero, MaxUnpool.

NonZero (and Compress with a run-time condition) use relax.op.nonzero, which TVM evaluates on
the host through a Python packed function (``relax.run.nonzero``): correct on CPU; the
count of non-zeros is bound to the IR's symbol for it with a match_cast.

Where a relax op has ONNX's semantics (topk, scatter_nd, scatter_elements, gather_nd) it is
used, with ONNX's negative indices normalized first; the rest are written as TE computes
that follow onnxruntime's arithmetic (float32 coordinates in Resize, ties-to-even in
QuantizeLinear) so that results match the oracle exactly where they can.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..errors import GraphoptError
from ..ir import DType
from .lowering import _axis, _dt, _R, _reg, _tir, pool_window


def _present(n, i) -> bool:
    if i >= len(n.inputs) or n.inputs[i] is None:
        return False
    s = n.inputs[i].type.shape
    return not (s is not None and len(s) == 1 and s[0] == 0)


def _i64(v):
    return _tir().const(v, "int64")


def _f(v, dt="float32"):
    return _tir().const(v, dt)


def _clampi(j, hi):
    tir = _tir()
    return tir.max(tir.min(j, hi), _i64(0))


def _indexed_dim(ix, d, i, axis_of, first_axis):
    """The size of the data dim that index ``ix[i]`` addresses: dim ``axis_of`` for every
    index, or (ND ops) dim ``first_axis`` + the position along the indices' last dim."""
    if axis_of is not None:
        return d.shape[axis_of]
    m = int(ix.shape[-1])
    dim = d.shape[first_axis + m - 1]
    for j in range(m - 2, -1, -1):
        dim = _tir().Select(i[-1] == j, d.shape[first_axis + j], dim)
    return dim


def _norm_indices_te(ctx, idx_expr, data_expr, axis_of=None, first_axis=None):
    """ONNX negative indices (idx < 0 counts from the end of data's dim) made non-negative.
    Data's axis is ``axis_of`` for every index, or (ND ops) ``first_axis`` + the position
    along the indices' last dim."""
    from tvm import te

    def compute(ix, d):
        def f(*i):
            v = ix(*i)
            dim = _indexed_dim(ix, d, i, axis_of, first_axis)
            return _tir().Select(v < _tir().const(0, ix.dtype), v + _tir().Cast(ix.dtype, dim), v)

        return te.compute(ix.shape, f, name="norm_idx")

    return ctx.te(compute, idx_expr, data_expr)


# --------------------------------------------------------------------------- index checks
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
            return _tir().Cast("int8", _tir().Or(v < _tir().const(0, ix.dtype), v >= _tir().Cast(ix.dtype, dim)))

        ax = [te.reduce_axis((0, s), name=f"k{j}") for j, s in enumerate(ix.shape)]
        return te.compute((), lambda: te.max(bad(*ax), axis=ax) if ax else bad(), name="index_out_of_range")

    f = ctx.te(flag, ie, data)
    n = ctx.node
    msg = f"node {n.name!r} ({n.qualified_op}): {what} out of range for the data's shape" if n is not None \
        else f"{what} out of range"
    return ctx.emit(relax.op.call_pure_packed(_CHECK_FN, ie, f, tvm.ir.StringImm(msg), ty_args=ie.ty))


# --------------------------------------------------------------------------- TopK
@_reg("TopK")
def _topk(ctx, n):
    x = n.inputs[0]
    r = ctx.rank(x)
    axis = _axis(ctx, n, "axis", r, -1)
    k = ctx.ints_input(n, 1, "K")[0]
    largest = bool(ctx.attr(n, "largest", 1))
    if k == 0:
        shp = ctx.out_shape(n)
        return [ctx.emit(_R().op.zeros(shp, _dt(x))), ctx.emit(_R().op.zeros(shp, "int64"))]
    t = ctx.emit(_R().op.topk(ctx.get(x), k, axis, "both", largest, "int64"))
    return [ctx.emit(_R().TupleGetItem(t, 0)), ctx.emit(_R().TupleGetItem(t, 1))]


# --------------------------------------------------------------------------- Resize
_CTMS = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric",
         "tf_crop_and_resize", "tf_half_pixel_for_nn")
_NEAREST = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")


def _coord_fn(ctm, scale, l_in, l_out, roi_start, roi_end):
    """The input coordinate (float32 TIR) of output index i, as onnxruntime computes it."""
    tir = _tir()
    f32 = np.float32
    s = _f(f32(scale))

    def xf(i):
        return tir.Cast("float32", i)

    if ctm == "half_pixel":
        return lambda i: (xf(i) + _f(0.5)) / s - _f(0.5)
    if ctm == "asymmetric":
        return lambda i: xf(i) / s
    if ctm == "pytorch_half_pixel":
        if l_out > 1:
            return lambda i: (xf(i) + _f(0.5)) / s - _f(0.5)
        return lambda i: _f(0.0)
    if ctm == "tf_half_pixel_for_nn":
        return lambda i: (xf(i) + _f(0.5)) / s
    if ctm == "align_corners":
        if l_out == 1:
            return lambda i: _f(0.0)
        return lambda i: xf(i) * _f(f32(l_in - 1)) / _f(f32(l_out - 1))
    if ctm == "half_pixel_symmetric":
        out_w = f32(scale) * f32(l_in)
        adj = f32(l_out) / out_w
        center = f32(l_in) / f32(2)
        off = center * (f32(1) - adj)
        return lambda i: _f(off) + ((xf(i) + _f(0.5)) / s) - _f(0.5)
    if ctm == "tf_crop_and_resize":
        a, b = f32(roi_start), f32(roi_end)
        if l_out > 1:
            return lambda i: _f(a * f32(l_in - 1)) + (xf(i) * _f(b - a) * _f(f32(l_in - 1))) / _f(f32(l_out - 1))
        return lambda i: _f(f32(0.5) * (a + b) * f32(l_in - 1))
    raise AssertionError(ctm)


def _cubic_coeffs(s, A):
    """onnxruntime's cubic convolution weights for the taps floor(x)-1 .. floor(x)+2 (s in [0, 1))."""
    A = _f(np.float32(A))
    one, two = _f(1.0), _f(2.0)
    five, eight, four, three = _f(5.0), _f(8.0), _f(4.0), _f(3.0)
    s1 = s + one
    c0 = ((A * s1 - five * A) * s1 + eight * A) * s1 - four * A
    c1 = ((A + two) * s - (A + three)) * s * s + one
    t = one - s
    c2 = ((A + two) * t - (A + three)) * t * t + one
    t2 = two - s
    c3 = ((A * t2 - five * A) * t2 + eight * A) * t2 - four * A
    return [c0, c1, c2, c3]


def _resize_axis(t, a, l_in, l_out, coord, mode, nearest_mode, cubic_a, exclude_outside, crop, extrap, acc_dt):
    from tvm import te

    tir = _tir()
    shape = list(t.shape)
    shape[a] = l_out
    dt = t.dtype
    hi = _i64(l_in - 1)

    def f(*idx):
        x = coord(idx[a])

        def at(j):
            ii = list(idx)
            ii[a] = j
            return t(*ii)

        if mode == "nearest":
            fl = tir.floor(x)
            frac = x - fl
            fi = tir.Cast("int64", fl)
            if nearest_mode == "round_prefer_floor":
                j = tir.Select(frac > _f(0.5), fi + _i64(1), fi)
            elif nearest_mode == "round_prefer_ceil":
                j = tir.Select(frac >= _f(0.5), fi + _i64(1), fi)
            elif nearest_mode == "floor":
                j = fi
            else:
                j = tir.Cast("int64", tir.ceil(x))
            val = at(_clampi(j, hi))
        elif mode == "linear":
            xc = tir.max(tir.min(x, _f(np.float32(l_in - 1))), _f(0.0))
            x0 = tir.min(tir.Cast("int64", tir.floor(xc)), hi)
            x1 = tir.min(x0 + _i64(1), hi)
            w1 = xc - tir.Cast("float32", x0)
            w0 = _f(1.0) - w1
            v = tir.Cast(acc_dt, at(x0)) * tir.Cast(acc_dt, w0) + tir.Cast(acc_dt, at(x1)) * tir.Cast(acc_dt, w1)
            val = tir.Cast(dt, v)
        else:  # cubic
            fl = tir.floor(x)
            s = x - fl
            fi = tir.Cast("int64", fl)
            cs = _cubic_coeffs(s, cubic_a)
            taps = [fi + _i64(k - 1) for k in range(4)]
            if exclude_outside:
                cs = [tir.Select(tir.all(j >= _i64(0), j <= hi), c, _f(0.0)) for c, j in zip(cs, taps)]
                tot = cs[0] + cs[1] + cs[2] + cs[3]
                cs = [c / tot for c in cs]
            v = None
            for c, j in zip(cs, taps):
                term = tir.Cast(acc_dt, c) * tir.Cast(acc_dt, at(_clampi(j, hi)))
                v = term if v is None else v + term
            val = tir.Cast(dt, v)
        if crop:
            out = tir.any(x < _f(0.0), x > _f(np.float32(l_in - 1)))
            val = tir.Select(out, tir.const(extrap, dt), val)
        return val

    return te.compute(shape, f, name=f"resize_{mode}_ax{a}")


@_reg("Resize")
def _resize(ctx, n):
    x = n.inputs[0]
    r = ctx.rank(x)
    mode = ctx.attr(n, "mode", "nearest")
    ctm = ctx.attr(n, "coordinate_transformation_mode", "half_pixel")
    nearest_mode = ctx.attr(n, "nearest_mode", "round_prefer_floor")
    cubic_a = float(ctx.attr(n, "cubic_coeff_a", -0.75))
    exclude_outside = int(ctx.attr(n, "exclude_outside", 0))
    extrap = float(ctx.attr(n, "extrapolation_value", 0.0))
    policy = ctx.attr(n, "keep_aspect_ratio_policy", "stretch")
    if ctx.attr(n, "antialias", 0):
        raise ctx.fail("Resize with antialias=1 is not supported")
    if mode not in ("nearest", "linear", "cubic"):
        raise ctx.fail(f"Resize mode {mode!r} is not supported")
    if ctm not in _CTMS:
        raise ctx.fail(f"Resize coordinate_transformation_mode {ctm!r} is not supported")
    if mode == "nearest" and nearest_mode not in _NEAREST:
        raise ctx.fail(f"Resize nearest_mode {nearest_mode!r} is not supported")
    if mode != "nearest" and not x.type.dtype.is_float:
        raise ctx.fail(f"Resize mode {mode!r} on {x.type.dtype.short} is not supported")
    axes = ctx.attr(n, "axes", None)
    axes = [a + r if a < 0 else a for a in axes] if axes else list(range(r))
    in_shape = list(x.type.shape)
    out_shape = list(n.outputs[0].type.shape)
    scales: dict[int, np.float32] = {}
    if _present(n, 2):
        sc = ctx.const_of(n.inputs[2])
        if sc is None:
            raise ctx.fail("Resize scales must be a constant")
        sc = np.asarray(sc, dtype=np.float32).reshape(-1)
        for a, s in zip(axes, sc):
            scales[a] = np.float32(s)
    elif _present(n, 3):
        sz = ctx.const_of(n.inputs[3])
        if sz is None:
            raise ctx.fail("Resize sizes must be a constant")
        sz = [int(v) for v in np.asarray(sz).reshape(-1)]
        for a, v in zip(axes, sz):
            if not isinstance(in_shape[a], int):
                raise ctx.fail(f"Resize sizes need a static input dim on axis {a} (it is {in_shape[a]})")
        ratios = {a: np.float32(s) / np.float32(in_shape[a]) for a, s in zip(axes, sz)}
        if policy == "stretch":
            scales = ratios
        else:
            pick = min(ratios.values()) if policy == "not_larger" else max(ratios.values())
            scales = {a: np.float32(pick) for a in axes}
    else:
        raise ctx.fail("Resize needs scales or sizes")
    roi = None
    if ctm == "tf_crop_and_resize":
        if _present(n, 1):
            roi = ctx.const_of(n.inputs[1])
            if roi is None:
                raise ctx.fail("Resize roi must be a constant")
            roi = np.asarray(roi, dtype=np.float32).reshape(-1)
            if len(roi) != 2 * len(axes):
                raise ctx.fail(f"Resize roi has {len(roi)} values, expected {2 * len(axes)}")
        else:
            roi = np.array([0.0] * len(axes) + [1.0] * len(axes), dtype=np.float32)
    dt = _dt(x)
    acc = "float64" if dt == "float64" else "float32"
    e = ctx.get(x)
    for j, a in enumerate(axes):
        l_in, l_out = in_shape[a], out_shape[a]
        s = scales[a]
        if s == 1 and l_in == l_out and ctm != "tf_crop_and_resize":
            continue  # every coordinate transform is the identity here
        if not isinstance(l_in, int) or not isinstance(l_out, int):
            raise ctx.fail(f"Resize needs static dims on the resized axes (axis {a}: {l_in} -> {l_out})")
        rs, re_ = (roi[j], roi[j + len(axes)]) if roi is not None else (0.0, 1.0)
        coord = _coord_fn(ctm, s, l_in, l_out, rs, re_)
        crop = ctm == "tf_crop_and_resize"
        e = ctx.te(lambda t, a=a, l_in=l_in, l_out=l_out, coord=coord: _resize_axis(
            t, a, l_in, l_out, coord, mode, nearest_mode, cubic_a, exclude_outside, crop, extrap, acc), e)
    return e


# --------------------------------------------------------------------------- gather / scatter
@_reg("GatherND")
def _gather_nd(ctx, n):
    x, idx = n.inputs
    b = ctx.attr(n, "batch_dims", 0)
    ie = _norm_indices_te(ctx, ctx.get(idx), ctx.get(x), first_axis=b)
    ie = checked_indices(ctx, ie, ctx.get(x), first_axis=b)
    return ctx.emit(_R().op.gather_nd(ctx.get(x), ie, b))


_RED = {"none": "update", "add": "add", "mul": "mul", "max": "max", "min": "min"}


@_reg("ScatterND")
def _scatter_nd(ctx, n):
    x, idx, upd = n.inputs
    red = ctx.attr(n, "reduction", "none")
    if red not in _RED:
        raise ctx.fail(f"ScatterND reduction {red!r} is not supported")
    ie = _norm_indices_te(ctx, ctx.get(idx), ctx.get(x), first_axis=0)
    ie = checked_indices(ctx, ie, ctx.get(x), first_axis=0)
    return ctx.emit(_R().op.scatter_nd(ctx.get(x), ie, ctx.get(upd), _RED[red]))


@_reg("ScatterElements")
def _scatter_elements(ctx, n):
    x, idx, upd = n.inputs
    r = ctx.rank(x)
    axis = _axis(ctx, n, "axis", r, 0)
    red = ctx.attr(n, "reduction", "none")
    if red not in _RED:
        raise ctx.fail(f"ScatterElements reduction {red!r} is not supported")
    ie = _norm_indices_te(ctx, ctx.get(idx), ctx.get(x), axis_of=axis)
    ie = checked_indices(ctx, ie, ctx.get(x), axis_of=axis)
    return ctx.emit(_R().op.scatter_elements(ctx.get(x), ie, ctx.get(upd), axis, _RED[red]))


@_reg("OneHot")
def _one_hot(ctx, n):
    idx, depth_v, values = n.inputs
    R = _R().op
    out = n.outputs[0]
    r_out = len(out.type.shape)
    axis = _axis(ctx, n, "axis", r_out, -1)
    dc = ctx.const_of(depth_v)
    if dc is None:
        raise ctx.fail("OneHot depth must be a constant")
    depth = int(np.asarray(dc).reshape(-1)[0])  # ONNX: a float depth is truncated
    ie = ctx.get(idx)
    if idx.type.dtype is not DType.INT64:
        ie = ctx.emit(R.astype(ie, "int64"))
    ie = ctx.emit(R.where(ctx.emit(R.less(ie, _R().const(0, "int64"))),
                          ctx.emit(R.add(ie, _R().const(depth, "int64"))), ie))
    ie = ctx.emit(R.expand_dims(ie, [axis]))
    ar = np.arange(depth, dtype=np.int64).reshape([depth] + [1] * (r_out - 1 - axis))
    hot = ctx.emit(R.equal(ie, ctx.array(ar, n.name + ".range")))
    vals = ctx.get(values)
    off = ctx.emit(R.reshape(ctx.emit(R.strided_slice(vals, [0], [0], [1])), []))
    on = ctx.emit(R.reshape(ctx.emit(R.strided_slice(vals, [0], [1], [2])), []))
    return ctx.emit(R.where(hot, on, off))


# --------------------------------------------------------------------------- normalization
@_reg("GroupNormalization")
def _group_norm(ctx, n):
    x, scale, bias = n.inputs
    r = ctx.rank(x)
    g = ctx.attr(n, "num_groups")
    eps = ctx.attr(n, "epsilon", 1e-5)
    R = _R().op
    dt = _dt(x)
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
    y = ctx.emit(R.divide(xc, ctx.emit(R.sqrt(ctx.emit(R.add(var, _R().const(eps, cdt)))))))
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


# --------------------------------------------------------------------------- quantization
_QRANGE = {"uint8": (0, 255), "int8": (-128, 127), "uint16": (0, 65535), "int16": (-32768, 32767)}


def _qparam(ctx, n, i, x_rank, axis, block, x_shape, to_dtype: Optional[str] = None):
    """Scale or zero point (input i) as an expression broadcastable against x."""
    v = n.inputs[i]
    R = _R().op
    e = ctx.get(v)
    if to_dtype is not None and _dt(v) != to_dtype:
        e = ctx.emit(R.astype(e, to_dtype))
    s = v.type.shape
    if s is None:
        raise ctx.fail(f"%{v.name} has unknown rank")
    if block:
        if len(s) != x_rank:
            raise ctx.fail(f"blocked %{v.name} must have the input's rank")
        e = ctx.emit(R.repeat(e, block, axis))
        d = x_shape[axis]
        if not isinstance(d, int):
            raise ctx.fail("blocked quantization needs a static dim on its axis")
        if isinstance(s[axis], int) and s[axis] * block != d:
            e = ctx.emit(R.strided_slice(e, [axis], [0], [d]))
        return e
    if len(s) == 0:
        return e
    if len(s) == 1 and isinstance(s[0], int) and s[0] == 1:
        return ctx.emit(R.reshape(e, []))
    # per-axis: [C] along ``axis``
    return ctx.emit(R.reshape(e, [-1] + [1] * (x_rank - 1 - axis)))


@_reg("QuantizeLinear")
def _quantize(ctx, n):
    x = n.inputs[0]
    r = ctx.rank(x)
    axis = _axis(ctx, n, "axis", r, 1) if r else 0
    block = ctx.attr(n, "block_size", 0)
    odt = _dt(n.outputs[0])
    if odt not in _QRANGE:
        raise ctx.fail(f"QuantizeLinear to {odt} is not supported")
    R = _R().op
    xs = list(x.type.shape)
    xe = ctx.get(x)
    if _dt(x) != "float32":
        xe = ctx.emit(R.astype(xe, "float32"))
    sc = _qparam(ctx, n, 1, r, axis, block, xs, "float32")
    y = ctx.emit(R.round(ctx.emit(R.divide(xe, sc))))
    if _present(n, 2):
        zp = _qparam(ctx, n, 2, r, axis, block, xs, "float32")
        y = ctx.emit(R.add(y, zp))
    lo, hi = _QRANGE[odt]
    y = ctx.emit(R.clip(y, lo, hi))
    return ctx.emit(R.astype(y, odt))


@_reg("DequantizeLinear")
def _dequantize(ctx, n):
    x = n.inputs[0]
    r = ctx.rank(x)
    axis = _axis(ctx, n, "axis", r, 1) if r else 0
    block = ctx.attr(n, "block_size", 0)
    odt = _dt(n.outputs[0])
    R = _R().op
    xs = list(x.type.shape)
    if x.type.dtype not in (DType.INT8, DType.UINT8, DType.INT16, DType.UINT16, DType.INT32):
        raise ctx.fail(f"DequantizeLinear from {x.type.dtype.short} is not supported")
    xe = ctx.emit(R.astype(ctx.get(x), "int32")) if _dt(x) != "int32" else ctx.get(x)
    if _present(n, 2):
        zp = _qparam(ctx, n, 2, r, axis, block, xs, "int32")
        xe = ctx.emit(R.subtract(xe, zp))
    xf = ctx.emit(R.astype(xe, "float32"))
    sc = _qparam(ctx, n, 1, r, axis, block, xs, "float32")
    y = ctx.emit(R.multiply(xf, sc))
    if odt != "float32":
        y = ctx.emit(R.astype(y, odt))
    return y


# --------------------------------------------------------------------------- creation / misc
@_reg("EyeLike")
def _eye_like(ctx, n):
    from tvm import te

    shp = ctx.shape_of(n.inputs[0])
    k = ctx.attr(n, "k", 0)
    dt = _dt(n.outputs[0])
    one, zero = (_tir().const(True, "bool"), _tir().const(False, "bool")) if dt == "bool" else \
        (_tir().const(1, dt), _tir().const(0, dt))
    return ctx.te(lambda: te.compute(shp, lambda i, j: _tir().Select(j - i == _i64(k), one, zero), name="eye_like"))


@_reg("ReverseSequence")
def _reverse_sequence(ctx, n):
    from tvm import te

    x, lens = n.inputs
    ba = _axis(ctx, n, "batch_axis", 2, 1)
    ta = _axis(ctx, n, "time_axis", 2, 0)

    def compute(t, s):
        def f(*i):
            L = _tir().Cast("int64", s(i[ba]))
            ti = _tir().Cast("int64", i[ta])
            src = _tir().Select(ti < L, L - _i64(1) - ti, ti)
            ii = list(i)
            ii[ta] = src
            return t(*ii)

        return te.compute(t.shape, f, name="reverse_sequence")

    return ctx.te(compute, ctx.get(x), ctx.get(lens))


@_reg("MatMulInteger")
def _matmul_integer(ctx, n):
    a, b = n.inputs[0], n.inputs[1]
    R = _R().op
    ae = ctx.emit(R.astype(ctx.get(a), "int32"))
    be = ctx.emit(R.astype(ctx.get(b), "int32"))
    if _present(n, 2):
        zp = n.inputs[2]
        z = ctx.emit(R.astype(ctx.get(zp), "int32"))
        zs = zp.type.shape
        if zs is not None and len(zs) == 1 and not (isinstance(zs[0], int) and zs[0] == 1):
            z = ctx.emit(R.reshape(z, [-1, 1]))  # per row of A
        elif zs is not None and len(zs) == 1:
            z = ctx.emit(R.reshape(z, []))
        ae = ctx.emit(R.subtract(ae, z))
    if _present(n, 3):
        zp = n.inputs[3]
        z = ctx.emit(R.astype(ctx.get(zp), "int32"))  # [N] (per column) broadcasts on B's last dim
        be = ctx.emit(R.subtract(be, z))
    return ctx.emit(R.matmul(ae, be, "int32"))


def _nonzero_expr(ctx, e, rank: int, sym_dim):
    """relax.op.nonzero (evaluated on the host by a packed function) with its data-dependent
    count bound to the IR's symbol ``sym_dim`` (a fresh name when it is not a symbol)."""
    R = _R()
    nz = ctx.emit(R.op.nonzero(e))
    if isinstance(sym_dim, str):
        cnt = ctx.sym(sym_dim)
    else:
        cnt = ctx.tvm.tirx.Var(f"nnz{len(ctx.syms)}", "int64")
    return ctx.bb.match_cast(nz, R.TensorType([rank, cnt], "int64")), cnt


@_reg("NonZero")
def _nonzero(ctx, n):
    x = n.inputs[0]
    r = ctx.rank(x)
    if r == 0:
        raise ctx.fail("NonZero of a scalar is not supported")
    return _nonzero_expr(ctx, ctx.get(x), r, n.outputs[0].type.shape[1])[0]


@_reg("Compress")
def _compress(ctx, n):
    x, cond = n.inputs
    axis = ctx.attr(n, "axis", None)
    e = ctx.get(x)
    R = _R().op
    if axis is None:
        e = ctx.emit(R.reshape(e, [-1]))
        ax = 0
        dim = int(np.prod(x.type.shape)) if _all_static(x) else None
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


def _all_static(v) -> bool:
    return v.type.shape is not None and all(isinstance(d, int) for d in v.type.shape)


# --------------------------------------------------------------------------- Lp pooling
def _pow_abs(v, p, dt):
    tir = _tir()
    if p == 1:
        return tir.abs(v)
    if p == 2:
        return v * v
    return tir.power(tir.abs(v), tir.const(float(p), dt))


def _root(v, p, dt):
    tir = _tir()
    if p == 1:
        return v
    if p == 2:
        return tir.sqrt(v)
    return tir.power(v, tir.const(1.0 / p, dt))


@_reg("LpPool")
def _lp_pool(ctx, n):
    from tvm import te

    x = n.inputs[0]
    d, ks, strides, dil, k_eff, pb, _ = pool_window(ctx, n)
    p = ctx.attr(n, "p", 2)
    oshape = ctx.out_shape(n)
    if any(isinstance(o, int) and o < 0 for o in oshape):
        raise ctx.fail("LpPool needs a known output shape")
    dt = _dt(x)

    def compute(t):
        rks = [te.reduce_axis((0, k), name=f"rk{i}") for i, k in enumerate(ks)]

        def f(nn_, c, *o):
            pos = [o[i] * strides[i] - pb[i] + rks[i] * dil[i] for i in range(d)]
            conds = []
            for j in range(d):
                conds += [pos[j] >= 0, pos[j] < t.shape[2 + j]]
            inside = _tir().all(*conds)
            v = t(nn_, c, *pos)
            return te.sum(_tir().Select(inside, _pow_abs(v, p, dt), _tir().const(0, dt)), axis=rks)

        s = te.compute(oshape, f, name="lppool_sum")
        return te.compute(oshape, lambda *i: _root(s(*i), p, dt), name="lppool")

    return ctx.te(compute, ctx.get(x))


@_reg("GlobalLpPool")
def _global_lp_pool(ctx, n):
    from tvm import te

    x = n.inputs[0]
    r = ctx.rank(x)
    p = ctx.attr(n, "p", 2)
    dt = _dt(x)
    R = _R().op
    powd = ctx.te(lambda t: te.compute(t.shape, lambda *i: _pow_abs(t(*i), p, dt), name="lp_pow"), ctx.get(x))
    s = ctx.emit(R.sum(powd, list(range(2, r)), True))
    return ctx.te(lambda t: te.compute(t.shape, lambda *i: _root(t(*i), p, dt), name="lp_root"), s)


# --------------------------------------------------------------------------- MaxUnpool
@_reg("MaxUnpool")
def _max_unpool(ctx, n):
    x, ind = n.inputs[0], n.inputs[1]
    R = _R().op
    oshape = ctx.out_shape(n)
    if any(not isinstance(o, int) or o < 0 for o in oshape):
        raise ctx.fail("MaxUnpool needs a static output shape")
    total = int(np.prod(oshape))
    dt = _dt(x)
    flat = ctx.emit(R.zeros([total], dt))
    xe = ctx.emit(R.reshape(ctx.get(x), [-1]))
    ie = ctx.emit(R.reshape(ctx.get(ind), [-1]))
    ie = checked_indices(ctx, ie, flat, axis_of=0, what="an index into the output")
    y = ctx.emit(R.scatter_elements(flat, ie, xe, 0, "update"))
    return ctx.emit(R.reshape(y, oshape))


_register_index_check()
