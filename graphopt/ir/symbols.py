"""Renaming symbolic dims across a whole graph (its subgraphs included)."""

from __future__ import annotations

from typing import Mapping

from .graph import Graph
from .types import TensorType


def _renamed(t: TensorType, mapping: Mapping[str, str]) -> TensorType:
    if t.shape is None:
        return t
    return TensorType(t.dtype, tuple(mapping.get(d, d) if isinstance(d, str) else d for d in t.shape))


def rename_dims(graph: Graph, mapping: Mapping[str, str]) -> bool:
    """Rename symbolic dims (``{"s77": "batch"}``) in every value's type. Returns whether
    anything changed; each changed type is journaled like any other mutation."""
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
            t = _renamed(v.type, mapping)
            if t != v.type:
                graph.set_output_type(v, t)
                changed = True
    return changed
