"""CPU lowerings of Conv, Gemm and MatMul with constant float32 weights through graphopt's
packed kernels (`codegen.kernels`), whose schedules (`codegen.schedules`) are CPU ones; on
other targets, and for the cases the kernels do not cover, the generic lowerings run
(CUDA's relax ops meet dlight's rules)."""

from __future__ import annotations

import numpy as np

from ...ir import DType
from ..kernels import emit_conv2d, emit_dense
from .conv import conv
from .helpers import rx, static_shape
from .linalg import const_weight, gemm, matmul
from .registry import register_lowering


@register_lowering("MatMul", target="cpu")
def _matmul(ctx, n):
    a, b = n.inputs
    bc = const_weight(ctx, b)
    if (bc is not None and b.type.shape is not None and len(b.type.shape) == 2
            and a.type.shape is not None and len(a.type.shape) >= 2 and a.type.dtype is DType.FLOAT32
            and static_shape(a.type.shape)):
        K, N = bc.shape
        ae = ctx.get(a)
        lead = list(a.type.shape[:-1])
        M = int(np.prod(lead))
        if len(lead) > 1:
            ae = ctx.emit(rx().op.reshape(ae, [M, K]))
        out = emit_dense(ctx, ae, bc.T, n.name)
        if len(lead) > 1:
            out = ctx.emit(rx().op.reshape(out, lead + [N]))
        return out
    return matmul(ctx, n)


def _dense_product(ctx, n, ae, bc, alpha, tb):
    a = n.inputs[0]
    if bc is None or a.type.dtype is not DType.FLOAT32 or not static_shape(a.type.shape):
        return None
    w = bc if tb else bc.T  # [N, K]
    if alpha != 1.0:
        w = (w.astype(np.float64) * alpha).astype(np.float32)
    return emit_dense(ctx, ae, w, n.name)


@register_lowering("Gemm", target="cpu")
def _gemm(ctx, n):
    return gemm(ctx, n, product=_dense_product)


def _conv2d_kernel(ctx, n, wc, strides, dil, groups, pb, pe):
    x = n.inputs[0]
    if ctx.rank(x) != 4 or wc is None or x.type.dtype is not DType.FLOAT32 or not static_shape(x.type.shape[1:]):
        return None
    return emit_conv2d(ctx, ctx.get(x), x.type.shape, wc, strides, dil, groups, pb, pe, n.name)


@register_lowering("Conv", target="cpu")
def _conv(ctx, n):
    return conv(ctx, n, kernel=_conv2d_kernel)
