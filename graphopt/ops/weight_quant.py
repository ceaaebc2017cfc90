"""Weight-only quantization: what a quantized matmul weight is, in one place.

A quantized weight is a standard ``DequantizeLinear`` of constants (int8, uint8, int4 or
uint4 data,
float32 scale, optional zero point), per output column or in blocks along K (opset 21's
``block_size``), feeding the weight input of a MatMul or Gemm, possibly through a
Transpose (a tied LM head reads the embedding table transposed). The quantize-weights
pass writes that form, fold-constants leaves it unfolded, and the CPU lowering turns it
into one kernel that dequantizes inside its inner loop: never a dequantized copy of the
weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..ir import DType, Node, Value

QUANT_DTYPES = (DType.INT8, DType.UINT8, DType.INT4, DType.UINT4)


@dataclass(frozen=True)
class NKWeight:
    """A quantized weight seen as [N, K] (output columns by reduction), ``block`` rows of K
    sharing a scale: ``w[n, k] = (q[n, k] - zero[n, k // block]) * scale[n, k // block]``."""

    q: np.ndarray                 # [N, K], int8 or uint8 (int4/uint4 values held one a byte)
    scale: np.ndarray             # [N, ceil(K / block)], float32
    zero: Optional[np.ndarray]    # like scale (the data's dtype), or None for zero
    block: int                    # K for one scale per output column
    bits: int = 8                 # 4 for int4/uint4 data

    def dequantized(self) -> np.ndarray:
        """[N, K] float32, as DequantizeLinear computes it (for tests and fallbacks)."""
        k = self.q.shape[1]
        s = np.repeat(self.scale, self.block, axis=1)[:, :k]
        q = self.q.astype(np.float32)
        if self.zero is not None:
            q = q - np.repeat(self.zero, self.block, axis=1)[:, :k].astype(np.float32)
        return (q * s).astype(np.float32)


def _const(v: Optional[Value]) -> Optional[np.ndarray]:
    if v is None or v.const is None or v.const.is_elided:
        return None
    return v.const.numpy()


def dequantize_source(node: Node) -> Optional[tuple[np.ndarray, np.ndarray, Optional[np.ndarray], int, int, int]]:
    """(q, scale, zero, axis, block, bits) of a DequantizeLinear of 2-D constants in the
    forms the kernel takes (8- or 4-bit data, float32 scale), else None."""
    if node.op_type != "DequantizeLinear" or node.domain:
        return None
    x, s = node.inputs[0], node.inputs[1]
    z = node.inputs[2] if len(node.inputs) > 2 else None
    q, scale = _const(x), _const(s)
    zero = _const(z) if z is not None else None
    if q is None or scale is None or (z is not None and zero is None):
        return None
    if q.ndim != 2 or x.type.dtype not in QUANT_DTYPES or s.type.dtype is not DType.FLOAT32:
        return None
    axis = node.attr("axis", 1)
    axis = axis + 2 if axis < 0 else axis
    return q, scale, zero, axis, node.attr("block_size", 0), 4 if x.type.dtype.is_4bit else 8


def _as_nk(q, scale, zero, axis: int, block: int, bits: int, n_axis: int) -> Optional[NKWeight]:
    """Reorient ``q`` ([K, N] for n_axis 1, [N, K] for n_axis 0) and its parameters to [N, K]."""
    if n_axis == 1:
        q = q.T
        axis = 1 - axis
        if scale.ndim == 2:
            scale = scale.T
            zero = zero.T if zero is not None else None
    N, K = q.shape
    if scale.size == 1 and block == 0:  # per tensor
        sc = np.full((N, 1), scale.reshape(()), np.float32)
        zp = None if zero is None else np.full((N, 1), zero.reshape(()), q.dtype)
        return NKWeight(np.ascontiguousarray(q), sc, zp, K, bits)
    if block == 0:  # per axis: only along N (one scale per output column) is a dense scale
        if axis != 0 or scale.shape != (N,):
            return None
        return NKWeight(np.ascontiguousarray(q), scale.reshape(N, 1), None if zero is None else zero.reshape(N, 1), K,
                        bits)
    if axis != 1 or scale.shape != (N, -(-K // block)):  # blocks along K
        return None
    return NKWeight(np.ascontiguousarray(q), np.ascontiguousarray(scale),
                    None if zero is None else np.ascontiguousarray(zero), block, bits)


def matmul_weight(node: Node, index: int = 1) -> Optional[NKWeight]:
    """The quantized weight input ``index`` of ``node`` (MatMul's B, or Gemm's B with its
    transB) reads, as [N, K]; None when it is not one."""
    if node.domain or node.op_type not in ("MatMul", "Gemm") or index != 1 or len(node.inputs) < 2:
        return None
    b = node.inputs[1]
    if b is None or b.producer is None:
        return None
    p, transposed = b.producer, False
    if p.op_type == "Transpose" and not p.domain and p.inputs[0] is not None and p.inputs[0].producer is not None:
        perm = p.attr("perm", None)
        if perm is not None and list(perm) != [1, 0]:
            return None
        p, transposed = p.inputs[0].producer, True
    src = dequantize_source(p)
    if src is None:
        return None
    trans_b = node.op_type == "Gemm" and bool(node.attr("transB", 0))
    # B as stored is [K, N] unless Gemm's transB or one Transpose (not both) flips it
    n_axis = 0 if trans_b != transposed else 1
    return _as_nk(*src, n_axis=n_axis)


def keeps_quantized(node: Node) -> bool:
    """Whether DequantizeLinear ``node`` is a quantized weight every reader of which takes
    it quantized (so folding it to float32 would undo the quantization)."""
    if dequantize_source(node) is None:
        return False
    uses = node.output.uses()
    for u, i in uses:
        if u.op_type == "Transpose" and not u.domain:
            if u.output.is_graph_output():
                return False
            readers = u.output.uses()
        else:
            readers = ((u, i),)
        for r, j in readers:
            if j != 1 or matmul_weight(r) is None:
                return False
    return bool(uses) and not node.output.is_graph_output()
