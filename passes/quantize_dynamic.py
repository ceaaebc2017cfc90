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
from typing import Optional

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


@register_pass
@dataclass
class QuantizeDynamic(Pass):
    name = "quantize-dynamic"
    summary = ("run-time int8 activations for MatMul/Gemm with quantized weights (DynamicQuantizeLinear + "
               "DequantizeLinear; opt-in, after quantize-weights)")

    exclude: str = ""           # node names whose activation stays float32: a, or (a,b)

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        opset = graph.opset_imports.get("", 0)
        if opset < 11:
            raise PassOptionError(f"quantize-dynamic: DynamicQuantizeLinear needs opset 11; graph {graph.name!r} "
                                  f"imports opset {opset}")
        excluded = name_list(self.exclude)
        done: dict[int, Value] = {}   # id(float activation) -> its DequantizeLinear output
        changed = False
        for node in list(graph.nodes):
            if node.domain or node.op_type not in ("MatMul", "Gemm"):
                continue
            site = f"{node.name} ({node.qualified_op})"
            if matmul_weight(node) is None:
                ctx.explain_failed(RULE, site, "its weight is not a quantized constant (run quantize-weights first)")
                continue
            reason = "excluded by name" if node.name in excluded else _skip_reason(node)
            if reason is not None:
                ctx.explain_failed(RULE, site, reason, near=True)
                continue
            a = node.inputs[0]
            if id(a) not in done:
                if not ctx.allow(RULE, [node], f"%{a.name}: {a.type}"):
                    ctx.explain_failed(RULE, site, "the bisect limit was reached")
                    continue
                done[id(a)] = self._quantize(graph, node, a)
                ctx.explain_applied(RULE, f"{site}: %{a.name} {a.type}")
            graph.set_input(node, 0, done[id(a)])
            changed = True
        return changed

    @staticmethod
    def _quantize(graph: Graph, node: Node, a: Value) -> Value:
        prov = Provenance(RULE, (node.name,))
        first = min((u for u, _ in a.uses()), key=lambda u: graph.nodes.index(u))
        dql = build(graph, "DynamicQuantizeLinear", [a], name=a.name + "_quantize", before=first, provenance=prov)
        dq = build(graph, "DequantizeLinear", list(dql.outputs), name=a.name + "_dequantize", before=first,
                   provenance=prov)
        return dq.output
