"""Renaming symbolic dims across a whole graph (its subgraphs included), and binding them
to sizes."""

from __future__ import annotations

from typing import Mapping

from .graph import Graph
from .types import Dim, TensorType


def _mapped(t: TensorType, mapping: Mapping[str, Dim]) -> TensorType:
    if t.shape is None:
        return t
    return TensorType(t.dtype, tuple(mapping.get(d, d) if isinstance(d, str) else d for d in t.shape))


def _map_dims(graph: Graph, mapping: Mapping[str, Dim]) -> bool:
    if not mapping:
        return False
    changed = False
    stack = [graph]
    while stack:
        g = stack.pop()
        values = list(g.inputs) + list(g.constants)
        for n in g.nodes:
            values.extend(o for o in n.outputs if o is not None)
            stack.extend(n.subgraphs())
        for v in values:
            t = _mapped(v.type, mapping)
            if t != v.type:
                graph.set_output_type(v, t)
                changed = True
    return changed


def rename_dims(graph: Graph, mapping: Mapping[str, str]) -> bool:
    """Rename symbolic dims (``{"s77": "batch"}``) in every value's type. Returns whether
    anything changed; each changed type is journaled like any other mutation."""
    return _map_dims(graph, mapping)


def bind_dims(graph: Graph, sizes: Mapping[str, int]) -> bool:
    """Replace symbolic dims by sizes (``{"seq": 128}``) in every value's type, subgraphs
    included. Only the symbols themselves change: what inference would now derive from
    them downstream (a Reshape's made-up dims) is `graphopt.ops.refine_types`' job."""
    return _map_dims(graph, dict(sizes))
