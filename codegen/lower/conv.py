"""Conv and ConvTranspose through relax's nn ops; the spatial padding both (and pooling)
read from ONNX's auto_pad/pads. graphopt's packed CPU kernel for Conv (packed.py) plugs in
through ``conv``'s ``kernel``."""

from __future__ import annotations

from .helpers import rx
from .registry import register_lowering


def spatial_pads(ctx, n, in_sp, k_eff, strides):
    """ONNX auto_pad/pads to (begin list, end list)."""
    d = len(in_sp)
    auto = ctx.attr(n, "auto_pad", "NOTSET")
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        b, e = [], []
        for i in range(d):
            if not isinstance(in_sp[i], int):
                raise ctx.fail("auto_pad SAME needs static spatial dims")
            out = -(-in_sp[i] // strides[i])
            tot = max(0, (out - 1) * strides[i] + k_eff[i] - in_sp[i])
            lo = tot // 2 if auto == "SAME_UPPER" else tot - tot // 2
            b.append(lo)
            e.append(tot - lo)
        return b, e
    if auto == "VALID":
        return [0] * d, [0] * d
    pads = ctx.attr(n, "pads", None)
    pads = list(pads) if pads else [0] * (2 * d)
    return pads[:d], pads[d:]


@register_lowering("Conv")
def conv(ctx, n, kernel=None):
    """Conv; ``kernel(ctx, n, w, strides, dil, groups, pb, pe)`` (``w`` the constant
    weights or None) may return the convolution without bias, or None to leave it to
    relax."""
    x, w = n.inputs[0], n.inputs[1]
    b = n.inputs[2] if len(n.inputs) > 2 else None
    r = ctx.rank(x)
    d = r - 2
    wshape = w.type.shape
    ks = ctx.attr(n, "kernel_shape", None) or list(wshape[2:])
    strides = list(ctx.attr(n, "strides", None) or [1] * d)
    dil = list(ctx.attr(n, "dilations", None) or [1] * d)
    groups = ctx.attr(n, "group", 1)
    k_eff = [(k - 1) * dl + 1 for k, dl in zip(ks, dil)]
    pb, pe = spatial_pads(ctx, n, list(x.type.shape[2:]), k_eff, strides)
    wc = ctx.const_of(w)
    bc = ctx.const_of(b) if b is not None else None
    y = kernel(ctx, n, wc, strides, dil, groups, pb, pe) if kernel is not None else None
    if y is None:
        xe, we = ctx.get(x), ctx.get(w)
        if d == 1:
            y = ctx.emit(rx().op.nn.conv1d(xe, we, strides, pb + pe, dil, groups))
        elif d == 2:
            y = ctx.emit(rx().op.nn.conv2d(xe, we, strides, [pb[0], pb[1], pe[0], pe[1]], dil, groups))
        elif d == 3:
            y = ctx.emit(rx().op.nn.conv3d(xe, we, strides, pb + pe, dil, groups))
        else:
            raise ctx.fail(f"{d}-d convolution is not supported")
    if b is not None:
        be = ctx.array(bc.reshape([-1] + [1] * d), b.name) if bc is not None else \
            ctx.emit(rx().op.reshape(ctx.get(b), [-1] + [1] * d))
        y = ctx.emit(rx().op.add(y, be))
    return y


@register_lowering("ConvTranspose")
def _conv_transpose(ctx, n):
    x, w = n.inputs[0], n.inputs[1]
    b = n.inputs[2] if len(n.inputs) > 2 else None
    r = ctx.rank(x)
    d = r - 2
    if d not in (1, 2):
        raise ctx.fail(f"{d}-d transposed convolution is not supported")
    if ctx.attr(n, "auto_pad", "NOTSET") not in ("NOTSET", "VALID") or ctx.attr(n, "output_shape", None):
        raise ctx.fail("auto_pad SAME and output_shape are not supported")
    strides = list(ctx.attr(n, "strides", None) or [1] * d)
    dil = list(ctx.attr(n, "dilations", None) or [1] * d)
    groups = ctx.attr(n, "group", 1)
    pads = list(ctx.attr(n, "pads", None) or [0] * (2 * d))
    opad = list(ctx.attr(n, "output_padding", None) or [0] * d)
    op = rx().op.nn.conv1d_transpose if d == 1 else rx().op.nn.conv2d_transpose
    y = ctx.emit(op(ctx.get(x), ctx.get(w), strides, pads, opad, dil, groups))
    if b is not None:
        y = ctx.emit(rx().op.add(y, ctx.emit(rx().op.reshape(ctx.get(b), [-1] + [1] * d))))
    return y
