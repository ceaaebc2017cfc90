"""Dynamic activation quantization (opt-in, in no -O level): the float32 activation A of
each MatMul or Gemm whose weight is already quantized (`graphopt.ops.weight_quant`: run
quantize-weights first) is quantized at run time, per tensor, as the standard pair

    xq, xs, xz = DynamicQuantizeLinear(A)        # u8, s = range / 255 with 0 in the range
    A' = DequantizeLinear(xq, xs, xz)            # (xq - xz) * xs

feeding the matmul: ``A' B = xs * ws * sum (xq - xz) q``, an integer sum, which graphopt's
integer kernel (`codegen.kernels.idense`) computes exactly in int32. The graph stays QDQ
ONNX that onnxruntime runs (it fuses the same pattern into its DynamicQuantizeMatMul).

One pair per activation value: the q, k and v projections reading one normalized x share
it. Nodes named in ``exclude`` (``a``, or ``(a,b)``) keep a float activation. Each quantized
activation is one application (``quantize-dynamic.activation``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

from graphopt.ir import DType, Graph, Node, Provenance, Value
from graphopt.ops import build
from graphopt.ops.weight_quant import matmul_weight
from graphopt.pipeline.base import Pass, PassContext, name_list, register_pass
from graphopt.pipeline.errors import PassOptionError

RULE = "quantize-dynamic.activation"


def _skip_reason(node: Node) -> Optional[str]:
    """Why ``node``'s A is not quantized (None when it is to be)."""
    a = node.inputs[0]
    if a is None or a.type.dtype is not DType.FLOAT32:
        return "its activation is not float32"
    if a.producer is not None and a.producer.op_type == "DequantizeLinear" and not a.producer.domain:
        return f"its activation %{a.name} is quantized already"
    if a.type.shape is None or len(a.type.shape) < 2:
        return f"its activation %{a.name} is not a matrix or a batch of rows"
    if node.op_type == "Gemm" and node.attr("transA", 0):
        return "Gemm's transA reads the activation transposed"
    return None


class ActivationQuantizer(Pass):
    """What quantize-dynamic and quantize-static share: find the float activations of
    MatMul/Gemm with quantized weights, one quantize/dequantize pair per activation value
    (the q, k and v projections reading one normalized x share it), placed before its
    first reader. Subclasses say how a value is quantized (`_quantize`) and may refuse a
    site (`_refusal`)."""

    rule: ClassVar[str] = ""
    min_opset: ClassVar[int] = 10
    exclude: str = ""

    def _refusal(self, a: Value) -> Optional[str]:
        return None

    def _quantize(self, graph: Graph, node: Node, a: Value) -> Value:  # pragma: no cover - abstract
        raise NotImplementedError

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        opset = graph.opset_imports.get("", 0)
        if opset < self.min_opset:
            raise PassOptionError(f"{self.name}: its quantize op needs opset {self.min_opset}; graph "
                                  f"{graph.name!r} imports opset {opset}")
        excluded = name_list(self.exclude)
        done: dict[int, Value] = {}   # id(float activation) -> its DequantizeLinear output
        changed = False
        for node in list(graph.nodes):
            if node.domain or node.op_type not in ("MatMul", "Gemm"):
                continue
            site = f"{node.name} ({node.qualified_op})"
            if matmul_weight(node) is None:
                ctx.explain_failed(self.rule, site, "its weight is not a quantized constant (run quantize-weights first)")
                continue
            reason = "excluded by name" if node.name in excluded else _skip_reason(node)
            if reason is None and id(node.inputs[0]) not in done:
                reason = self._refusal(node.inputs[0])
            if reason is not None:
                ctx.explain_failed(self.rule, site, reason, near=True)
                continue
            a = node.inputs[0]
            if id(a) not in done:
                if not ctx.allow(self.rule, [node], f"%{a.name}: {a.type}"):
                    ctx.explain_failed(self.rule, site, "the bisect limit was reached")
                    continue
                done[id(a)] = self._quantize(graph, node, a)
                ctx.explain_applied(self.rule, f"{site}: %{a.name} {a.type}")
            graph.set_input(node, 0, done[id(a)])
            changed = True
        return changed

    @staticmethod
    def first_reader(graph: Graph, a: Value) -> Node:
        return min((u for u, _ in a.uses()), key=lambda u: graph.nodes.index(u))


@register_pass
@dataclass
class QuantizeDynamic(ActivationQuantizer):
    name = "quantize-dynamic"
    summary = ("run-time int8 activations for MatMul/Gemm with quantized weights (DynamicQuantizeLinear + "
               "DequantizeLinear; opt-in, after quantize-weights)")
    rule = RULE
    min_opset = 11

    exclude: str = ""           # node names whose activation stays float32: a, or (a,b)

    def _quantize(self, graph: Graph, node: Node, a: Value) -> Value:
        prov = Provenance(RULE, (node.name,))
        first = self.first_reader(graph, a)
        dql = build(graph, "DynamicQuantizeLinear", [a], name=a.name + "_quantize", before=first, provenance=prov)
        dq = build(graph, "DequantizeLinear", list(dql.outputs), name=a.name + "_dequantize", before=first,
                   provenance=prov)
        return dq.output
