"""CPU lowerings onto the integer matmul kernel (`codegen.kernels.idense`): int8/uint8
activations times int8 constant weights, summed in int32.

Two forms take it:

- QDQ: a MatMul or Gemm whose A is a DequantizeLinear of 8-bit activations with one scale
  (and zero point) for the tensor, as `quantize-dynamic` writes it (after a
  DynamicQuantizeLinear) and static QDQ does, and whose B is a quantized constant weight
  (`graphopt.ops.weight_quant`). ``Y = x_scale * sum_b s[n, b] * sum_{k in b} (xq - xz)
  (q - z)``. The activation's DequantizeLinear is deferred like the weight's: nothing
  float is computed of it unless another reader needs it;
- MatMulInteger with a constant B: the int32 sum itself.

Either needs AVX2 (x86 ``vpmaddwd``); elsewhere, and for the cases the kernel does not
take (a weight less its zero point that is not int8, per-row activation zero points), the
generic lowerings run.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ...ir import DType, Node, Value
from ...ops.weight_quant import NKWeight, matmul_weight
from ..kernels.idense import emit_dynamic_pairs, emit_idense, fits, pack_activation, pack_weight
from .helpers import add_bias, rx, static_shape
from .quant import dynamic_quantize
from .registry import register_lowering

_ACT_DTYPES = (DType.INT8, DType.UINT8)


def _scalar(v: Optional[Value]) -> bool:
    s = None if v is None else v.type.shape
    return s is not None and (len(s) == 0 or (len(s) == 1 and s[0] == 1))


def kernel_available() -> tuple[bool, bool]:
    """(whether the host has the kernel's AVX2, whether it has AVX512-VNNI)."""
    from ..target import host_cpu

    f = host_cpu().features
    return "avx2" in f, "avx512_vnni" in f and "avx512vl" in f


@dataclass(frozen=True)
class QActivation:
    """A per-tensor 8-bit activation: A = (xq - zero) * scale; ``source`` the float32 x
    when the three are DynamicQuantizeLinear(x)'s outputs."""

    q: Value
    scale: Optional[Value]
    zero: Optional[Value]
    source: Optional[Value] = None


def _dynamic_source(q: Value, s: Value, z: Optional[Value]) -> Optional[Value]:
    """x when (q, s, z) are the outputs of one DynamicQuantizeLinear(x) of static shape."""
    p = q.producer
    if p is None or p.op_type != "DynamicQuantizeLinear" or p.domain or z is None:
        return None
    if list(p.outputs) != [q, s, z] or not static_shape(p.inputs[0].type.shape):
        return None
    return p.inputs[0]


def quantized_activation(n: Node) -> Optional[QActivation]:
    """The 8-bit activation ``n`` (MatMul or Gemm) reads as A through a per-tensor
    DequantizeLinear of a computed (not constant) tensor of static shape; else None."""
    if n.domain or n.op_type not in ("MatMul", "Gemm") or not n.inputs or n.inputs[0] is None:
        return None
    if n.op_type == "Gemm" and n.attr("transA", 0):
        return None
    d = n.inputs[0].producer
    if d is None or d.op_type != "DequantizeLinear" or d.domain or d.attr("block_size", 0):
        return None
    xq, s = d.inputs[0], d.inputs[1]
    z = d.inputs[2] if len(d.inputs) > 2 else None
    if xq is None or xq.is_constant or xq.type.dtype not in _ACT_DTYPES or not static_shape(xq.type.shape):
        return None
    if len(xq.type.shape) < 2 or (n.op_type == "Gemm" and len(xq.type.shape) != 2):
        return None
    if not _scalar(s) or s.type.dtype is not DType.FLOAT32 or (z is not None and not _scalar(z)):
        return None
    return QActivation(xq, s, z, _dynamic_source(xq, s, z))


def _int_weight(w: Optional[NKWeight]) -> bool:
    return (w is not None and fits(w.q, w.zero, w.block)
            and (w.scale.shape[1] == 1 or w.block % 2 == 0))


def takes_int_kernel(n: Node) -> bool:
    """Whether MatMul/Gemm ``n`` lowers to the integer kernel on this host."""
    avx2, _ = kernel_available()
    return avx2 and quantized_activation(n) is not None and _int_weight(matmul_weight(n))


def absorbed_activation(d: Node) -> bool:
    """Whether every reader of DequantizeLinear ``d``'s output takes it as the integer
    kernel's A (so its float value need not exist)."""
    o = d.outputs[0] if len(d.outputs) == 1 else None
    if o is None or o.is_graph_output() or not o.uses():
        return False
    return all(i == 0 and takes_int_kernel(u) for u, i in o.uses())


def absorbed_dynamic_quantize(n: Node) -> bool:
    """Whether every output of DynamicQuantizeLinear ``n`` is read only by absorbed
    activation DequantizeLinears (`absorbed_activation`): then the integer path computes
    its pairs and scale from x in one kernel, and the node itself emits nothing."""
    if any(o is None or o.is_graph_output() for o in n.outputs):
        return False
    readers = {id(u): u for o in n.outputs for u, _ in o.uses()}
    return bool(readers) and all(
        u.op_type == "DequantizeLinear" and not u.domain and list(u.inputs) == list(n.outputs)
        and absorbed_activation(u) for u in readers.values())


def _pairs(ctx, act: QActivation):
    """(the activation packed as the kernel's pairs [M, K/2], its scale [1]), once per
    activation (the q, k and v projections read the same one)."""
    key = ("idense-pairs", id(act.q), id(act.zero))
    cache = ctx.memo
    if key not in cache:
        shape = list(act.q.type.shape)
        M, K = int(np.prod(shape[:-1])), shape[-1]
        if act.source is not None and ctx.is_deferred(act.q):
            cache[key] = emit_dynamic_pairs(ctx, ctx.get(act.source), M, K)
        else:
            xe = ctx.get(act.q)
            if len(shape) > 2:
                xe = ctx.emit(rx().op.reshape(xe, [M, K]))
            pairs = pack_activation(ctx, xe, K, ctx.get(act.zero) if act.zero is not None else None)
            cache[key] = (pairs, ctx.get(act.scale) if act.scale is not None else None)
    return cache[key]


@register_lowering("DynamicQuantizeLinear", target="cpu")
def _dynamic_quantize_cpu(ctx, n: Node):
    """DynamicQuantizeLinear on the CPU: deferred when the integer path reads it whole."""
    if absorbed_dynamic_quantize(n):
        d = ctx.defer(n, dynamic_quantize)
        return [d] * len(n.outputs)
    return dynamic_quantize(ctx, n)


def int_matmul(ctx, n: Node):
    """MatMul/Gemm ``n`` through the integer kernel (bias and alpha included), or None
    when it does not take it."""
    if not takes_int_kernel(n):
        return None
    act, w = quantized_activation(n), matmul_weight(n)
    if n.op_type == "Gemm":
        alpha = ctx.attr(n, "alpha", 1.0)
        if alpha != 1.0:
            w = dataclasses.replace(w, scale=(w.scale.astype(np.float64) * alpha).astype(np.float32))
    shape = list(act.q.type.shape)
    rows = int(np.prod(shape[:-1]))
    _, vnni = kernel_available()
    pairs, x_scale = _pairs(ctx, act)
    out = emit_idense(ctx, pairs, rows, pack_weight(w.q, w.scale, w.zero, w.block), x_scale, n.name, vnni)
    if len(shape) > 2:
        out = ctx.emit(rx().op.reshape(out, shape[:-1] + [w.q.shape[0]]))
    if n.op_type == "Gemm" and len(n.inputs) > 2 and n.inputs[2] is not None and ctx.attr(n, "beta", 1.0) != 0.0:
        out = add_bias(ctx, out, n.inputs[2], ctx.attr(n, "beta", 1.0), "float32")
    return out


def int_matmul_integer(ctx, n: Node):
    """MatMulInteger with a constant 2-D B (zero points scalar for A, scalar or per column
    for B) through the kernel's int32 mode, or None."""
    avx2, vnni = kernel_available()
    a, b = n.inputs[0], n.inputs[1]
    az = n.inputs[2] if len(n.inputs) > 2 else None
    bz = n.inputs[3] if len(n.inputs) > 3 else None
    bc = ctx.const_of(b)
    if not avx2 or bc is None or bc.ndim != 2 or a.is_constant or not static_shape(a.type.shape):
        return None
    if len(a.type.shape) < 2 or (az is not None and not _scalar(az)):
        return None
    zb = None
    if bz is not None:
        zc = ctx.const_of(bz)
        if zc is None or zc.size not in (1, bc.shape[1]):
            return None
        zb = np.broadcast_to(zc.reshape(-1), (bc.shape[1],)).reshape(-1, 1)
    q_nk = np.ascontiguousarray(bc.T)
    if not fits(q_nk, zb, q_nk.shape[1]):
        return None
    K = q_nk.shape[1]
    w = pack_weight(q_nk, np.ones((q_nk.shape[0], 1), np.float32), zb, K, split=False)
    shape = list(a.type.shape)
    rows = int(np.prod(shape[:-1]))
    pairs, _ = _pairs(ctx, QActivation(a, None, az))
    out = emit_idense(ctx, pairs, rows, w, None, n.name, vnni, int32=True)
    if len(shape) > 2:
        out = ctx.emit(rx().op.reshape(out, shape[:-1] + [q_nk.shape[0]]))
    return out
