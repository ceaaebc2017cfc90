"""Copying a graph. Structure (values, nodes, subgraphs) is copied; constant payloads
(TensorData) are shared, since nothing mutates them in place (`Graph.set_constant_data`
swaps the payload), so a copy of a model with gigabytes of weights costs almost nothing."""

from __future__ import annotations

from typing import Optional

from .attributes import Attr, AttrKind
from .graph import Graph, Value


def clone_graph(graph: Graph) -> Graph:
    """An independent copy of ``graph`` (a root graph) that prints identically."""
    return clone_subgraph(graph, None, {})


def clone_subgraph(g: Graph, scope: Optional[Graph], vmap: dict[int, Value]) -> Graph:
    """A copy of ``g`` nested in ``scope`` (None: a root graph). ``vmap`` maps id() of
    every value of ``g`` (and of graphs enclosing it) to its copy, so that a subgraph's
    reads of enclosing values point at their copies; it is filled as values are copied."""
    out = Graph(g.name, g.opset_imports, scope=scope)
    out.doc_string = g.doc_string
    for v in g.inputs:
        vmap[id(v)] = out.add_input(v.name, v.type)
    for c in g.constants:
        vmap[id(c)] = out.add_constant(c.name, c.const, provenance=c.provenance)  # type: ignore[arg-type]
    for n in g.nodes:
        attrs = {}
        for k, a in n.attrs.items():
            attrs[k] = Attr(AttrKind.GRAPH, clone_subgraph(a.value, out, vmap)) if a.kind is AttrKind.GRAPH else a
        m = out.add_node(
            n.op_type,
            [None if v is None else vmap[id(v)] for v in n.inputs],
            [None if o is None else o.type for o in n.outputs],
            attrs,
            name=n.name,
            domain=n.domain,
            output_names=[None if o is None else o.name for o in n.outputs],
            provenance=n.provenance,
        )
        for o, mo in zip(n.outputs, m.outputs):
            if o is not None:
                vmap[id(o)] = mo  # type: ignore[assignment]
    out.outputs = [vmap[id(v)] for v in g.outputs]
    out._journal.clear()
    return out
