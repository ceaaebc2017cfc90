"""Floating-point operations of one inference, counted over graphopt's IR.

Each op's rule lives with the op in the registry (``traits.flops``; the conventions are in
`graphopt.ops.flops`): two FLOPs per multiply-accumulate for MatMul/Gemm/Conv, one per
window element for pooling, one per input element for reductions, nothing for data
movement, one per output element otherwise. Fused groups and control-flow bodies count
what is inside. The total is an estimate good to a few percent on real networks, where the
MAC-counted ops dominate.

Shapes must be static. Symbolic dimensions are bound from ``bindings`` (a symbol -> int map,
e.g. taken from example inputs with `bind_symbols`); a value whose shape stays unknown
counts nothing and is listed in ``FlopCount.unknown``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional

@dataclass
class FlopCount:
    total: int = 0
    by_op: dict = field(default_factory=dict)
    unknown: list = field(default_factory=list)   # node names whose shapes were not static

    @property
    def gflop(self) -> float:
        return self.total / 1e9

    def add(self, op: str, n: int) -> None:
        if n:
            self.total += int(n)
            self.by_op[op] = self.by_op.get(op, 0) + int(n)


def node_flops(node, bindings: Mapping[str, int] = {}) -> Optional[int]:
    """FLOPs of one node (its op's rule in the registry), or None when its shapes are not known."""
    from ..ops import get_schema
    from ..ops.flops import FlopSite, per_element

    site = FlopSite(node, bindings)
    subs = node.subgraphs()
    if node.domain not in ("", "ai.onnx") and not subs:
        return 0
    schema = get_schema(node.op_type, node.domain)
    rule = schema.traits.flops if schema is not None else None
    if rule is not None and not subs:
        return rule(site)
    if site.output() is None:
        return None
    if subs:  # a fused group (or a control-flow body): count what is inside
        total = 0
        for sg in subs:
            c = count_flops(sg, bindings)
            if c.unknown:
                return None
            total += c.total
        return total
    return per_element(1)(site)


def count_flops(graph, bindings: Optional[Mapping[str, int]] = None) -> FlopCount:
    """FLOPs of one run of ``graph`` (see the module docstring for what counts)."""
    bindings = dict(bindings or {})
    fc = FlopCount()
    for node in graph.nodes:
        n = node_flops(node, bindings)
        if n is None:
            fc.unknown.append(node.name)
        else:
            fc.add(node.op_type, n)
    return fc


def bind_symbols(graph, inputs) -> dict:
    """Symbol -> size for the graph inputs' symbolic dimensions, from example arrays
    (a sequence in input order or a name -> array mapping)."""
    if isinstance(inputs, Mapping):
        arrays = [inputs.get(v.name) for v in graph.inputs]
    else:
        arrays = list(inputs)
    out: dict = {}
    for v, a in zip(graph.inputs, arrays):
        if a is None or v.type.shape is None:
            continue
        for d, n in zip(v.type.shape, getattr(a, "shape", ())):
            if isinstance(d, str):
                out[d] = int(n)
    return out


def model_flops(model, inputs=None) -> FlopCount:
    """FLOPs of an ONNX model (path, bytes or ModelProto) or a graphopt Graph, imported as is
    (no passes), with symbolic dimensions bound from ``inputs`` when given."""
    from ..ir import Graph

    if isinstance(model, Graph):
        g = model
    else:
        from ..frontend.onnx_import import import_onnx

        g = import_onnx(model)
    return count_flops(g, bind_symbols(g, inputs) if inputs is not None else None)
