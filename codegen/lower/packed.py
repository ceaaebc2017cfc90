"""CPU lowerings of Conv, Gemm and MatMul with constant float32 weights, or quantized
weights (`graphopt.ops.weight_quant`), through graphopt's packed kernels
(`codegen.kernels`), whose schedules (`codegen.schedules`) are CPU ones; on other targets,
and for the cases the kernels do not cover, the generic lowerings run (CUDA's relax ops
meet dlight's rules). A quantized weight's DequantizeLinear (and the Transpose of a tied
head) is deferred: the quantized kernel reads its integers, and nothing else of it is
emitted unless another reader needs the float weight."""

from __future__ import annotations

import dataclasses

import numpy as np

from ...ir import DType, Node
from ...ops.weight_quant import dequantize_source, matmul_weight
from ..kernels import emit_conv2d, emit_dense, emit_qdense
from .conv import conv
from .helpers import rx, static_shape
from .integer import absorbed_activation, int_matmul, int_matmul_integer
from .linalg import const_weight, gemm, matmul
from .quant import dequantize, matmul_integer
from .registry import register_lowering
from .shape import transpose


def _quantized_weight(n: Node):
    """The quantized weight (as [N, K]) of a MatMul/Gemm the quantized kernel takes: float32
    A of static shape (2-D for Gemm), B a quantized weight; else None."""
    a = n.inputs[0]
    if a is None or a.type.dtype is not DType.FLOAT32 or not static_shape(a.type.shape):
        return None
    if len(a.type.shape) < 2 or (n.op_type == "Gemm" and len(a.type.shape) != 2):
        return None
    return matmul_weight(n)


def _absorbed(n: Node) -> bool:
    """Whether every reader of ``n`` (a DequantizeLinear of a quantized weight, or the
    Transpose of one) takes it as its quantized weight."""
    o = n.outputs[0] if len(n.outputs) == 1 else None
    if o is None or o.is_graph_output() or not o.uses():
        return False
    for u, i in o.uses():
        if u.op_type == "Transpose" and not u.domain and n.op_type == "DequantizeLinear":
            if not _absorbed(u):
                return False
        elif i != 1 or _quantized_weight(u) is None:
            return False
    return True


@register_lowering("DequantizeLinear", target="cpu")
def _dequantize_cpu(ctx, n):
    if (dequantize_source(n) is not None and _absorbed(n)) or absorbed_activation(n):
        return ctx.defer(n, dequantize)
    return dequantize(ctx, n)


@register_lowering("Transpose", target="cpu")
def _transpose_cpu(ctx, n):
    if ctx.is_deferred(n.inputs[0]) and _absorbed(n):
        return ctx.defer(n, transpose)
    return transpose(ctx, n)


def _rows(ctx, a):
    """``a`` as [M, K] (the lead dims flattened) and its lead dims."""
    ae = ctx.get(a)
    lead = list(a.type.shape[:-1])
    if len(lead) > 1:
        ae = ctx.emit(rx().op.reshape(ae, [int(np.prod(lead)), a.type.shape[-1]]))
    return ae, lead


@register_lowering("MatMul", target="cpu")
def _matmul(ctx, n):
    out = int_matmul(ctx, n)
    if out is not None:
        return out
    a, b = n.inputs
    wq = _quantized_weight(n)
    if wq is not None:
        ae, lead = _rows(ctx, a)
        out = emit_qdense(ctx, ae, wq, n.name, rows=int(np.prod(lead)))
        if len(lead) > 1:
            out = ctx.emit(rx().op.reshape(out, lead + [wq.q.shape[0]]))
        return out
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
    wq = _quantized_weight(n) if bc is None else None
    if wq is not None:  # alpha * (q - z) * s: alpha goes into the scale
        scale = (wq.scale.astype(np.float64) * alpha).astype(np.float32) if alpha != 1.0 else wq.scale
        rows = a.type.shape[1] if ctx.attr(n, "transA", 0) else a.type.shape[0]
        return emit_qdense(ctx, ae, dataclasses.replace(wq, scale=scale), n.name, rows=rows)
    if bc is None or a.type.dtype is not DType.FLOAT32 or not static_shape(a.type.shape):
        return None
    w = bc if tb else bc.T  # [N, K]
    if alpha != 1.0:
        w = (w.astype(np.float64) * alpha).astype(np.float32)
    return emit_dense(ctx, ae, w, n.name)


@register_lowering("Gemm", target="cpu")
def _gemm(ctx, n):
    out = int_matmul(ctx, n)
    if out is not None:
        return out
    return gemm(ctx, n, product=_dense_product)


@register_lowering("MatMulInteger", target="cpu")
def _matmul_integer_cpu(ctx, n):
    out = int_matmul_integer(ctx, n)
    return out if out is not None else matmul_integer(ctx, n)


def _conv2d_kernel(ctx, n, wc, strides, dil, groups, pb, pe):
    x = n.inputs[0]
    if ctx.rank(x) != 4 or wc is None or x.type.dtype is not DType.FLOAT32 or not static_shape(x.type.shape[1:]):
        return None
    return emit_conv2d(ctx, ctx.get(x), x.type.shape, wc, strides, dil, groups, pb, pe, n.name)


@register_lowering("Conv", target="cpu")
def _conv(ctx, n):
    return conv(ctx, n, kernel=_conv2d_kernel)
