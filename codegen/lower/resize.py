"""Resize as TE computes, one per resized axis, that follow onnxruntime's arithmetic
(float32 coordinates, its cubic weights) so that results match the oracle exactly where
they can."""

from __future__ import annotations

import numpy as np

from .helpers import dtype_of, i64, present, tirx
from .registry import register_lowering


def _f(v, dt="float32"):
    return tirx().const(v, dt)


def _clampi(j, hi):
    tir = tirx()
    return tir.max(tir.min(j, hi), i64(0))


_CTMS = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric",
         "tf_crop_and_resize", "tf_half_pixel_for_nn")


_NEAREST = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")


def _coord_fn(ctm, scale, l_in, l_out, roi_start, roi_end):
    """The input coordinate (float32 TIR) of output index i, as onnxruntime computes it."""
    tir = tirx()
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

    tir = tirx()
    shape = list(t.shape)
    shape[a] = l_out
    dt = t.dtype
    hi = i64(l_in - 1)

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
                j = tir.Select(frac > _f(0.5), fi + i64(1), fi)
            elif nearest_mode == "round_prefer_ceil":
                j = tir.Select(frac >= _f(0.5), fi + i64(1), fi)
            elif nearest_mode == "floor":
                j = fi
            else:
                j = tir.Cast("int64", tir.ceil(x))
            val = at(_clampi(j, hi))
        elif mode == "linear":
            xc = tir.max(tir.min(x, _f(np.float32(l_in - 1))), _f(0.0))
            x0 = tir.min(tir.Cast("int64", tir.floor(xc)), hi)
            x1 = tir.min(x0 + i64(1), hi)
            w1 = xc - tir.Cast("float32", x0)
            w0 = _f(1.0) - w1
            v = tir.Cast(acc_dt, at(x0)) * tir.Cast(acc_dt, w0) + tir.Cast(acc_dt, at(x1)) * tir.Cast(acc_dt, w1)
            val = tir.Cast(dt, v)
        else:  # cubic
            fl = tir.floor(x)
            s = x - fl
            fi = tir.Cast("int64", fl)
            cs = _cubic_coeffs(s, cubic_a)
            taps = [fi + i64(k - 1) for k in range(4)]
            if exclude_outside:
                cs = [tir.Select(tir.all(j >= i64(0), j <= hi), c, _f(0.0)) for c, j in zip(cs, taps)]
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


@register_lowering("Resize")
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
    if present(n, 2):
        sc = ctx.const_of(n.inputs[2])
        if sc is None:
            raise ctx.fail("Resize scales must be a constant")
        sc = np.asarray(sc, dtype=np.float32).reshape(-1)
        for a, s in zip(axes, sc):
            scales[a] = np.float32(s)
    elif present(n, 3):
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
        if present(n, 1):
            roi = ctx.const_of(n.inputs[1])
            if roi is None:
                raise ctx.fail("Resize roi must be a constant")
            roi = np.asarray(roi, dtype=np.float32).reshape(-1)
            if len(roi) != 2 * len(axes):
                raise ctx.fail(f"Resize roi has {len(roi)} values, expected {2 * len(axes)}")
        else:
            roi = np.array([0.0] * len(axes) + [1.0] * len(axes), dtype=np.float32)
    dt = dtype_of(x)
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
