"""Fused groups: `outline` turns a convex set of nodes into one ``graphopt.FusedGroup`` node
holding them as its ``body`` subgraph (a kernel boundary graphopt chose), and `inline`
puts a group's nodes back. Both go through the graph's mutation API, so the journal
records them.

A group is self-contained: every value its nodes read from outside (graph inputs, other
nodes' outputs) becomes one of its inputs; the constants they read are copied into the body
(a kernel needs its shapes and axes as constants, and its type inference sees them); every
value they produce that is used outside (or is a graph output) becomes one of its outputs,
which keeps the original name.
Inside, names are prefixed with the group's name (``fused_0/relu``): the body is a nested
scope of the same graph, and a nested scope may not redefine a name it can see.
"""

from __future__ import annotations

from typing import Iterable, Optional, Sequence

from .attributes import Attr, AttrKind
from .clone import clone_subgraph
from .graph import Graph, IRError, Node, Value

DOMAIN = "graphopt"
FUSED_GROUP = "FusedGroup"
BODY = "body"


class OutlineError(IRError):
    """A set of nodes that cannot become one group; the message says why."""


def is_fused_group(node: Node) -> bool:
    return node.domain == DOMAIN and node.op_type == FUSED_GROUP


def why_not_outline(graph: Graph, nodes: Sequence[Node]) -> Optional[str]:
    """None when ``nodes`` can be outlined; else the reason (not convex, mixed graphs, ...)."""
    if not nodes:
        return "no nodes to outline"
    ids = {id(n) for n in nodes}
    if len(ids) != len(nodes):
        return "a node is listed twice"
    for n in nodes:
        if n.graph is not graph:
            return f"node {n.name!r} is not in graph {graph.name!r}"
        for sg in n.subgraphs():
            outer = _outer_reads(sg)
            if outer:
                return f"node {n.name!r} holds a subgraph that reads %{outer[0].name} from outside it"
    if not any(o is not None and (o.is_graph_output() or any(id(u.node) not in ids for u in o.uses()))
               for n in nodes for o in n.outputs):
        return "nothing the nodes compute is used outside them (dead code: remove it instead)"
    # Convex: no path leaves the set and comes back. Walk forward from the set's outputs
    # through outside nodes only; reaching a set node again means the group would have to
    # both precede and follow that outside node.
    frontier = [(u.node, n) for n in nodes for o in n.outputs if o is not None for u in o.uses()
                if id(u.node) not in ids and u.node.graph is graph]
    seen: set[int] = set()
    while frontier:
        node, via = frontier.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        for o in node.outputs:
            if o is None:
                continue
            for u in o.uses():
                if u.node.graph is not graph:
                    continue
                if id(u.node) in ids:
                    return (f"the set is not convex: node {node.name!r} (outside it) reads a value of node "
                            f"{via.name!r} and feeds node {u.node.name!r} (inside it)")
                frontier.append((u.node, via))
    return None


def outline(graph: Graph, nodes: Iterable[Node], name: str = "fused") -> Node:
    """Replace ``nodes`` (a convex set of nodes of ``graph``) by one FusedGroup node holding
    them; returns the new node. Raises OutlineError, with the reason, for a set that
    cannot be outlined (the graph is then unchanged)."""
    order = {id(n): i for i, n in enumerate(graph.nodes)}
    nodes = list(nodes)
    why = why_not_outline(graph, nodes)
    if why:
        raise OutlineError(f"cannot outline {len(nodes)} node(s) of graph {graph.name!r}: {why}")
    nodes.sort(key=lambda n: order[id(n)])
    ids = {id(n) for n in nodes}
    inside = {id(o) for n in nodes for o in n.outputs if o is not None}
    ins: list[Value] = []
    for n in nodes:
        for v in n.inputs:
            if v is not None and id(v) not in inside and not v.is_constant and all(v is not x for x in ins):
                ins.append(v)
    outs = [o for n in nodes for o in n.outputs if o is not None
            and (o.is_graph_output() or any(id(u.node) not in ids for u in o.uses()))]
    group_name = graph._fresh_node_name(name)
    body = _body(graph, group_name, nodes, ins, outs)
    group = graph.add_node(FUSED_GROUP, ins, [o.type for o in outs], {BODY: Attr(AttrKind.GRAPH, body)},
                           name=group_name, domain=DOMAIN, after=nodes[-1],
                           output_names=[graph.fresh_name(f"{group_name}_out{i}") for i in range(len(outs))])
    for old, new in zip(outs, group.outputs):
        graph.replace_all_uses(old, new)
    for n in reversed(nodes):
        graph.erase_node(n)
    for old_name, new in zip([o.name for o in outs], group.outputs):
        graph.rename_value(new, old_name)
    graph.sort()
    graph.root.opset_imports.setdefault(DOMAIN, 1)
    return group


def _body(graph: Graph, prefix: str, nodes: list[Node], ins: list[Value], outs: list[Value]) -> Graph:
    """The group's subgraph: its inputs stand for ``ins``, its nodes are copies of ``nodes``."""
    body = Graph(prefix, graph.root.opset_imports)
    vmap: dict[int, Value] = {}
    taken: set[str] = set()

    def fresh(hint: str) -> str:
        cand = graph.fresh_name(f"{prefix}/{hint}")
        while cand in taken:
            cand = graph.fresh_name(f"{prefix}/{hint}_{len(taken)}")
        taken.add(cand)
        return cand

    for v in ins:
        vmap[id(v)] = body.add_input(fresh(v.name), v.type)
    for n in nodes:
        for v in n.inputs:
            if v is not None and v.is_constant and id(v) not in vmap:
                vmap[id(v)] = body.add_constant(fresh(v.name), v.const, provenance=v.provenance)
    for n in nodes:
        attrs = {k: (Attr(AttrKind.GRAPH, clone_subgraph(a.value, body, {})) if a.kind is AttrKind.GRAPH else a)
                 for k, a in n.attrs.items()}
        m = body.add_node(n.op_type, [None if v is None else vmap[id(v)] for v in n.inputs],
                          [None if o is None else o.type for o in n.outputs], attrs,
                          name=f"{prefix}/{n.name}", domain=n.domain, provenance=n.provenance,
                          output_names=[None if o is None else fresh(o.name) for o in n.outputs])
        for o, mo in zip(n.outputs, m.outputs):
            if o is not None:
                vmap[id(o)] = mo
    body.outputs = [vmap[id(o)] for o in outs]
    body._journal.clear()
    return body


def inline(graph: Graph, node: Node) -> list[Node]:
    """Put a FusedGroup's nodes back in place of it (names lose the group's prefix where
    that name is free); returns the new nodes."""
    if not is_fused_group(node):
        raise IRError(f"node {node.name!r} is {node.qualified_op}, not a {DOMAIN}.{FUSED_GROUP}")
    if node.graph is not graph:
        raise IRError(f"node {node.name!r} is not in graph {graph.name!r}")
    body: Graph = node.attrs[BODY].value
    prefix = node.name + "/"
    vmap: dict[int, Value] = {}
    for bv, v in zip(body.inputs, node.inputs):
        vmap[id(bv)] = v
    for c in body.constants:
        vmap[id(c)] = graph.add_constant(graph.fresh_name(_strip(c.name, prefix)), c.const, provenance=c.provenance)
    created = []
    for n in body.nodes:
        attrs = {k: (Attr(AttrKind.GRAPH, clone_subgraph(a.value, graph, vmap)) if a.kind is AttrKind.GRAPH else a)
                 for k, a in n.attrs.items()}
        m = graph.add_node(n.op_type, [None if v is None else vmap[id(v)] for v in n.inputs],
                           [None if o is None else o.type for o in n.outputs], attrs,
                           name=_strip(n.name, prefix), domain=n.domain, provenance=n.provenance, before=node,
                           output_names=[None if o is None else graph.fresh_name(_strip(o.name, prefix))
                                         for o in n.outputs])
        created.append(m)
        for o, mo in zip(n.outputs, m.outputs):
            if o is not None:
                vmap[id(o)] = mo
    results = [vmap[id(o)] for o in body.outputs]
    names = [o.name for o in node.outputs]
    renames = []
    for old, new in zip(node.outputs, results):
        if old is not None:
            if old.is_graph_output() and (new.is_graph_input or new.is_constant or new.is_graph_output()):
                # A group that passes an input (or constant) straight out: keep the output's
                # name with an Identity, as ONNX export would need anyway.
                new = graph.add_node("Identity", [new], [new.type], name=f"{node.name}_identity", before=node).output
                created.append(new.producer)
            graph.replace_all_uses(old, new)
            renames.append(new)
    graph.erase_node(node)
    for v, nm in zip(renames, names):
        if v.producer is not None and v.producer in created and graph.lookup(nm) is None:
            graph.rename_value(v, nm)
    return created


def _strip(name: str, prefix: str) -> str:
    return name[len(prefix):] if name.startswith(prefix) else name


def _outer_reads(sg: Graph) -> list[Value]:
    """Values that ``sg`` (or graphs nested in it) reads from outside itself."""
    defined: set[int] = set()
    out: list[Value] = []

    def visit(g: Graph) -> None:
        for v in list(g.inputs) + list(g.constants):
            defined.add(id(v))
        for n in g.nodes:
            for v in n.inputs:
                if v is not None and id(v) not in defined and all(v is not x for x in out):
                    out.append(v)
            for o in n.outputs:
                if o is not None:
                    defined.add(id(o))
            for inner in n.subgraphs():
                visit(inner)
        for v in g.outputs:
            if id(v) not in defined and all(v is not x for x in out):
                out.append(v)

    visit(sg)
    return out
