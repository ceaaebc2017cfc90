"""The integer ops: QuantizeLinear (ties to even, as onnxruntime), DequantizeLinear
(per tensor, per axis, blocked; int4/uint4 too, held one a byte) and MatMulInteger (exact
int32)."""

from __future__ import annotations

from typing import Optional

from ...ir import DType
from .helpers import axis_attr, dtype_of, present, rx
from .registry import register_lowering


_QUANT_OUT = (DType.INT4, DType.UINT4, DType.INT8, DType.UINT8, DType.INT16, DType.UINT16)
_DEQUANT_IN = _QUANT_OUT + (DType.INT32,)


def _qparam(ctx, n, i, x_rank, axis, block, x_shape, to_dtype: Optional[str] = None):
    """Scale or zero point (input i) as an expression broadcastable against x."""
    v = n.inputs[i]
    R = rx().op
    e = ctx.get(v)
    if to_dtype is not None and dtype_of(v) != to_dtype:
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


def _qparams(ctx, n):
    """``param(i, dtype)``: input ``i`` (scale or zero point) of a (De)QuantizeLinear node,
    shaped to broadcast against the data (per tensor, per axis or per block)."""
    x = n.inputs[0]
    r = ctx.rank(x)
    axis = axis_attr(ctx, n, "axis", r, 1) if r else 0
    block, xs = ctx.attr(n, "block_size", 0), list(x.type.shape)
    return lambda i, dt: _qparam(ctx, n, i, r, axis, block, xs, dt)


@register_lowering("QuantizeLinear")
def _quantize(ctx, n):
    x = n.inputs[0]
    out = n.outputs[0].type.dtype
    if out not in _QUANT_OUT:
        raise ctx.fail(f"QuantizeLinear to {out.short} is not supported")
    odt = dtype_of(n.outputs[0])  # (int4 is held in int8: the clip below keeps it in range)
    R = rx().op
    param = _qparams(ctx, n)
    xe = ctx.get(x)
    if dtype_of(x) != "float32":
        xe = ctx.emit(R.astype(xe, "float32"))
    sc = param(1, "float32")
    y = ctx.emit(R.round(ctx.emit(R.divide(xe, sc))))
    if present(n, 2):
        zp = param(2, "float32")
        y = ctx.emit(R.add(y, zp))
    lo, hi = out.int_range
    y = ctx.emit(R.clip(y, lo, hi))
    return ctx.emit(R.astype(y, odt))


@register_lowering("DequantizeLinear")
def dequantize(ctx, n):
    x = n.inputs[0]
    odt = dtype_of(n.outputs[0])
    R = rx().op
    param = _qparams(ctx, n)
    if x.type.dtype not in _DEQUANT_IN:
        raise ctx.fail(f"DequantizeLinear from {x.type.dtype.short} is not supported")
    xe = ctx.emit(R.astype(ctx.get(x), "int32")) if dtype_of(x) != "int32" else ctx.get(x)
    if present(n, 2):
        zp = param(2, "int32")
        xe = ctx.emit(R.subtract(xe, zp))
    xf = ctx.emit(R.astype(xe, "float32"))
    sc = param(1, "float32")
    y = ctx.emit(R.multiply(xf, sc))
    if odt != "float32":
        y = ctx.emit(R.astype(y, odt))
    return y


@register_lowering("MatMulInteger")
def matmul_integer(ctx, n):
    a, b = n.inputs[0], n.inputs[1]
    R = rx().op
    ae = ctx.emit(R.astype(ctx.get(a), "int32"))
    be = ctx.emit(R.astype(ctx.get(b), "int32"))
    if present(n, 2):
        zp = n.inputs[2]
        z = ctx.emit(R.astype(ctx.get(zp), "int32"))
        zs = zp.type.shape
        if zs is not None and len(zs) == 1 and not (isinstance(zs[0], int) and zs[0] == 1):
            z = ctx.emit(R.reshape(z, [-1, 1]))  # per row of A
        elif zs is not None and len(zs) == 1:
            z = ctx.emit(R.reshape(z, []))
        ae = ctx.emit(R.subtract(ae, z))
    if present(n, 3):
        zp = n.inputs[3]
        z = ctx.emit(R.astype(ctx.get(zp), "int32"))  # [N] (per column) broadcasts on B's last dim
        be = ctx.emit(R.subtract(be, z))
    return ctx.emit(R.matmul(ae, be, "int32"))


@register_lowering("DynamicQuantizeLinear")
def dynamic_quantize(ctx, n):
    """onnxruntime's arithmetic: the range stretched to hold 0, ``s = (max - min) / 255`` (1
    for an all-zero range), ``z = rint(clip(-min / s, 0, 255))``, ``y = clip(rint(x / s) +
    z, 0, 255)``: ties to even, a division (not a reciprocal), so the integers agree."""
    R = rx().op
    x = ctx.get(n.inputs[0])
    zero = rx().const(0.0, "float32")
    lo = ctx.emit(R.minimum(ctx.emit(R.min(x)), zero))
    hi = ctx.emit(R.maximum(ctx.emit(R.max(x)), zero))
    rng = ctx.emit(R.subtract(hi, lo))
    s = ctx.emit(R.where(ctx.emit(R.equal(rng, zero)), rx().const(1.0, "float32"),
                         ctx.emit(R.divide(rng, rx().const(255.0, "float32")))))
    z = ctx.emit(R.round(ctx.emit(R.clip(ctx.emit(R.negative(ctx.emit(R.divide(lo, s)))), 0, 255))))
    y = ctx.emit(R.clip(ctx.emit(R.add(ctx.emit(R.round(ctx.emit(R.divide(x, s)))), z)), 0, 255))
    return [ctx.emit(R.astype(y, "uint8")), s, ctx.emit(R.astype(z, "uint8"))]
