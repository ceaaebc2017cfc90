"""Weight-only quantization (opt-in, in no -O level): each large constant float32 weight
of a MatMul or Gemm (and a tied LM head's Transpose of the embedding table) becomes a
standard ``DequantizeLinear`` of int8 (``bits=8``) or int4 (``bits=4``) constants feeding
the matmul:

- ``block=0``: one scale per output column (opset 13's per-axis DequantizeLinear; opset
  21 for int4);
- ``block=B``: one scale per B consecutive rows of K in each column (opset 21's
  ``block_size``), which follows outliers more closely; int4 wants it (32 is llama.cpp's
  and onnxruntime-genai's choice).

Symmetric (the default): ``s = max |W| / 127`` of the block and ``q = clip(round(W / s),
-127, 127)`` (round half to even, as QuantizeLinear); int4 takes, per block, the scale
``max |W| / d`` of least squared error over -8..7 (`INT4_DIVISORS`).
``zero_point=1``: uint8/uint4 with a zero point, ``s = (max - min) / (2^bits - 1)`` of the
block's range stretched to hold 0 and ``z = round(-min / s)``, for weights that lean to
one side. The graph stays ordinary QDQ ONNX that onnxruntime runs; the CPU lowering reads
the integer weight in its matmul kernel (`graphopt.ops.weight_quant`; int4 two a byte).
Weights with fewer than ``min_elements`` elements and nodes named in ``exclude`` (``a``,
or ``(a,b)``) stay float32. Each quantized weight is one application
(``quantize-weights.int8`` or ``quantize-weights.int4``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from graphopt.ir import DType, Graph, Node, Provenance, TensorData, Value
from graphopt.ops import build
from graphopt.pipeline.base import Pass, PassContext, name_list, register_pass
from graphopt.pipeline.errors import PassOptionError

BITS = (4, 8)


def quantize_symmetric(w_nk: np.ndarray, block: int, bits: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """``w_nk`` [N, K] float32 -> (q [N, K] int8, holding int4 values for ``bits=4``; scale
    [N, ceil(K / block)] float32); ``block`` 0 for one scale per row N."""
    qmax = (1 << (bits - 1)) - 1
    blocks, k = _blocks(w_nk, block)
    amax = np.abs(blocks).max(axis=2)
    if bits == 4:
        return _search_int4(blocks, amax, k)
    scale = np.where(amax > 0, amax / qmax, 1.0).astype(np.float32)
    q = np.clip(np.rint(blocks / scale[:, :, None]), -qmax, qmax).astype(np.int8)
    return q.reshape(q.shape[0], -1)[:, :k], scale


# int4 has 16 levels: amax / 7 leaves -8 unused and rounds coarsely, so each block takes
# the scale of least squared error among amax / d for these d, over -8..7 (the largest
# weight of the block may clip to 7 steps when d > 7).
INT4_DIVISORS = (6.5, 7.0, 7.25, 7.5, 7.75, 8.0)


def _search_int4(blocks: np.ndarray, amax: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    best_err = best_scale = None
    for d in INT4_DIVISORS:
        scale = np.where(amax > 0, amax / d, 1.0).astype(np.float32)
        q = np.clip(np.rint(blocks / scale[:, :, None]), -8, 7)
        err = ((q * scale[:, :, None] - blocks) ** 2).sum(axis=2)
        if best_err is None:
            best_err, best_scale = err, scale
        else:
            better = err < best_err
            best_err, best_scale = np.where(better, err, best_err), np.where(better, scale, best_scale)
    q = np.clip(np.rint(blocks / best_scale[:, :, None]), -8, 7).astype(np.int8)
    return q.reshape(q.shape[0], -1)[:, :k], best_scale.astype(np.float32)


def quantize_asymmetric(w_nk: np.ndarray, block: int, bits: int = 8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``w_nk`` [N, K] float32 -> (q [N, K] uint8, scale and zero point [N, blocks]): each
    block's range, stretched to hold 0, spread over 0..2^bits - 1."""
    qmax = (1 << bits) - 1
    blocks, k = _blocks(w_nk, block)
    lo, hi = np.minimum(blocks.min(axis=2), 0), np.maximum(blocks.max(axis=2), 0)
    scale = np.where(hi > lo, (hi - lo) / qmax, 1.0).astype(np.float32)
    zero = np.clip(np.rint(-lo / scale), 0, qmax)
    q = np.clip(np.rint(blocks / scale[:, :, None]) + zero[:, :, None], 0, qmax).astype(np.uint8)
    return q.reshape(q.shape[0], -1)[:, :k], scale, zero.astype(np.uint8)


def _blocks(w_nk: np.ndarray, block: int) -> tuple[np.ndarray, int]:
    """[N, K] as [N, blocks, block], the last block padded with zeros (which hold no range)."""
    n, k = w_nk.shape
    b = k if block == 0 else block
    nb = -(-k // b)
    pad = np.zeros((n, nb * b), np.float32)
    pad[:, :k] = w_nk
    return pad.reshape(n, nb, b), k


def _weight(node: Node) -> Optional[tuple[Value, bool]]:
    """(the float32 2-D constant node reads as its weight, whether it is stored [N, K]),
    looking through one Transpose of a constant; None when the weight is not one."""
    if node.domain or node.op_type not in ("MatMul", "Gemm") or len(node.inputs) < 2:
        return None
    b = node.inputs[1]
    if b is None:
        return None
    flipped = node.op_type == "Gemm" and bool(node.attr("transB", 0))
    if not b.is_constant and b.producer is not None and b.producer.op_type == "Transpose" \
            and not b.producer.domain and list(b.producer.attr("perm", None) or [1, 0]) == [1, 0]:
        b, flipped = b.producer.inputs[0], not flipped
    if b is None or not b.is_constant or b.const.is_elided or b.type.dtype is not DType.FLOAT32:
        return None
    if b.type.shape is None or len(b.type.shape) != 2:
        return None
    return b, flipped


@register_pass
@dataclass
class QuantizeWeights(Pass):
    name = "quantize-weights"
    summary = "int8/int4 weight-only quantization of MatMul/Gemm weights (DequantizeLinear of constants; opt-in)"

    bits: int = 8               # 8 or 4
    block: int = 0              # 0: one scale per output column; else scales per block along K
    zero_point: bool = False    # uint with a zero point per scale, instead of symmetric int
    min_elements: int = 4096
    exclude: str = ""           # node names left in float32: a, or (a,b)

    def __post_init__(self):
        if self.bits not in BITS:
            raise PassOptionError(f"quantize-weights: bits={self.bits} is not supported (4 or 8)")
        if self.block < 0:
            raise PassOptionError(f"quantize-weights: block={self.block} must be 0 or positive")

    @property
    def rule(self) -> str:
        return f"quantize-weights.int{self.bits}"

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        opset = graph.opset_imports.get("", 0)
        need = 21 if self.block or self.bits == 4 else 13
        if opset < need:
            what = "int4" if self.bits == 4 else "blocked" if self.block else "per-column"
            raise PassOptionError(f"quantize-weights: {what} DequantizeLinear needs opset {need}; graph "
                                  f"{graph.name!r} imports opset {opset}")
        excluded = name_list(self.exclude)
        done: dict[int, Value] = {}  # id(float weight) -> its DequantizeLinear output (a shared weight once)
        changed = False
        for node in list(graph.nodes):
            site = f"{node.name} ({node.qualified_op})"
            found = _weight(node)
            if found is None:
                continue
            w, stored_nk = found
            if node.name in excluded:
                ctx.explain_failed(self.rule, site, "excluded by name")
                continue
            if w.type.numel() < self.min_elements:
                ctx.explain_failed(self.rule, site, f"%{w.name} has {w.type.numel()} elements, under min-elements "
                                   f"{self.min_elements}")
                continue
            if id(w) in done:
                self._rewire(graph, node, w, done[id(w)])
                changed = True
                continue
            if not ctx.allow(self.rule, [node], f"%{w.name}: {w.type}"):
                ctx.explain_failed(self.rule, site, "the bisect limit was reached")
                continue
            done[id(w)] = self._quantize(graph, node, w, stored_nk)
            self._rewire(graph, node, w, done[id(w)])
            ctx.explain_applied(self.rule, f"{site}: %{w.name} {w.type}")
            changed = True
        return changed

    def _quantize(self, graph: Graph, node: Node, w: Value, stored_nk: bool) -> Value:
        arr = w.const.numpy()
        w_nk = arr if stored_nk else arr.T
        w_nk = np.ascontiguousarray(w_nk, np.float32)
        if self.zero_point:
            q, scale, zero = quantize_asymmetric(w_nk, self.block, self.bits)
            dtype = DType.UINT4 if self.bits == 4 else DType.UINT8
        else:
            (q, scale), zero = quantize_symmetric(w_nk, self.block, self.bits), None
            dtype = DType.INT4 if self.bits == 4 else DType.INT8
        # Stored as the weight was: [K, N] quantizes along axis 1 (per column) or blocks on
        # axis 0; [N, K] the other way round.
        params = [scale] + ([zero] if zero is not None else [])
        if stored_nk:
            qs, axis = q, 0 if not self.block else 1
            params = [p if self.block else p[:, 0] for p in params]
        else:
            qs, axis = q.T, 1 if not self.block else 0
            params = [p.T if self.block else p[:, 0] for p in params]
        prov = Provenance(self.rule, (node.name,))
        qv = graph.add_constant(graph.fresh_name(w.name + "_q"), TensorData(np.ascontiguousarray(qs), dtype),
                                provenance=prov)
        ins = [qv, graph.add_constant(graph.fresh_name(w.name + "_scale"),
                                      TensorData.from_numpy(np.ascontiguousarray(params[0], np.float32)),
                                      provenance=prov)]
        if zero is not None:
            ins.append(graph.add_constant(graph.fresh_name(w.name + "_zero"),
                                          TensorData(np.ascontiguousarray(params[1]), dtype), provenance=prov))
        attrs = {"axis": axis}
        if self.block:
            attrs["block_size"] = self.block
        first = min((u for u, _ in w.uses()), key=lambda u: graph.nodes.index(u))
        dq = build(graph, "DequantizeLinear", ins, attrs, name=w.name + "_dequantize", before=first,
                   provenance=prov)
        return dq.output

    @staticmethod
    def _rewire(graph: Graph, node: Node, w: Value, dq: Value) -> None:
        """Point ``node``'s weight (or the Transpose it reads ``w`` through) at ``dq``."""
        b = node.inputs[1]
        if b is w:
            graph.set_input(node, 1, dq)
        else:
            t = b.producer
            if t.inputs[0] is w:
                graph.set_input(t, 0, dq)
