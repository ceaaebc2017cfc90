"""Weight-only quantization (opt-in, in no -O level): each large constant float32 weight
of a MatMul or Gemm (and a tied LM head's Transpose of the embedding table) becomes a
standard ``DequantizeLinear`` of int8 constants feeding the matmul, symmetric:

- ``block=0``: one scale per output column, ``s[n] = max_k |W[k, n]| / 127``
  (opset 13's per-axis DequantizeLinear);
- ``block=B``: one scale per B consecutive rows of K in each column (opset 21's
  ``block_size``), which follows outliers more closely.

``q = clip(round(W / s), -127, 127)`` (round half to even, as QuantizeLinear). The graph
stays ordinary QDQ ONNX that onnxruntime runs; the CPU lowering reads the int8 weight in
its matmul kernel (`graphopt.ops.weight_quant`). Weights with fewer than ``min_elements``
elements and nodes named in ``exclude`` (``a``, or ``(a,b)``) stay float32. Each quantized
weight is one application (``quantize-weights.int8``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from graphopt.ir import DType, Graph, Node, Provenance, TensorData, Value
from graphopt.ops import build
from graphopt.pipeline.base import Pass, PassContext, name_list, register_pass
from graphopt.pipeline.errors import PassOptionError

RULE = "quantize-weights.int8"
QMAX = 127


def quantize_symmetric(w_nk: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray]:
    """``w_nk`` [N, K] float32 -> (q [N, K] int8, scale [N, ceil(K / block)] float32);
    ``block`` 0 for one scale per row N."""
    n, k = w_nk.shape
    b = k if block == 0 else block
    nb = -(-k // b)
    pad = np.zeros((n, nb * b), np.float32)
    pad[:, :k] = w_nk
    amax = np.abs(pad.reshape(n, nb, b)).max(axis=2)
    scale = np.where(amax > 0, amax / QMAX, 1.0).astype(np.float32)
    q = np.clip(np.rint(pad.reshape(n, nb, b) / scale[:, :, None]), -QMAX, QMAX).astype(np.int8)
    return q.reshape(n, nb * b)[:, :k], scale


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
    summary = "int8 weight-only quantization of MatMul/Gemm weights (DequantizeLinear of int8 constants; opt-in)"

    bits: int = 8
    block: int = 0              # 0: one scale per output column; else scales per block along K
    min_elements: int = 4096
    exclude: str = ""           # node names left in float32: a, or (a,b)

    def __post_init__(self):
        if self.bits != 8:
            raise PassOptionError(f"quantize-weights: bits={self.bits} is not supported (8 is; int4 needs the IR's "
                                  "int4 type, not there yet)")
        if self.block < 0:
            raise PassOptionError(f"quantize-weights: block={self.block} must be 0 or positive")

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        opset = graph.opset_imports.get("", 0)
        need = 21 if self.block else 13
        if opset < need:
            raise PassOptionError(f"quantize-weights: {'blocked' if self.block else 'per-column'} DequantizeLinear "
                                  f"needs opset {need}; graph {graph.name!r} imports opset {opset}")
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
                ctx.explain_failed(RULE, site, "excluded by name")
                continue
            if w.type.numel() < self.min_elements:
                ctx.explain_failed(RULE, site, f"%{w.name} has {w.type.numel()} elements, under min-elements "
                                   f"{self.min_elements}")
                continue
            if id(w) in done:
                self._rewire(graph, node, w, done[id(w)])
                changed = True
                continue
            if not ctx.allow(RULE, [node], f"%{w.name}: {w.type}"):
                ctx.explain_failed(RULE, site, "the bisect limit was reached")
                continue
            done[id(w)] = self._quantize(graph, node, w, stored_nk)
            self._rewire(graph, node, w, done[id(w)])
            ctx.explain_applied(RULE, f"{site}: %{w.name} {w.type}")
            changed = True
        return changed

    def _quantize(self, graph: Graph, node: Node, w: Value, stored_nk: bool) -> Value:
        arr = w.const.numpy()
        w_nk = arr if stored_nk else arr.T
        q, scale = quantize_symmetric(np.ascontiguousarray(w_nk, np.float32), self.block)
        # Stored as the weight was: [K, N] quantizes along axis 1 (per column) or blocks on
        # axis 0; [N, K] the other way round.
        if stored_nk:
            qs, ss, axis = q, (scale if self.block else scale[:, 0]), 0 if not self.block else 1
        else:
            qs, ss, axis = q.T, (scale.T if self.block else scale[:, 0]), 1 if not self.block else 0
        prov = Provenance(RULE, (node.name,))
        qv = graph.add_constant(graph.fresh_name(w.name + "_q"), TensorData.from_numpy(np.ascontiguousarray(qs)),
                                provenance=prov)
        sv = graph.add_constant(graph.fresh_name(w.name + "_scale"),
                                TensorData.from_numpy(np.ascontiguousarray(ss, np.float32)), provenance=prov)
        attrs = {"axis": axis}
        if self.block:
            attrs["block_size"] = self.block
        first = min((u for u, _ in w.uses()), key=lambda u: graph.nodes.index(u))
        dq = build(graph, "DequantizeLinear", [qv, sv], attrs, name=w.name + "_dequantize", before=first,
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
