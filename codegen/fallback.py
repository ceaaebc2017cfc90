"""``fallback="ort"``: ops graphopt cannot lower run on onnxruntime inside the artifact.

The graph is cut into stages that run one after the other: TVM stages (lowered and built
as usual) and onnxruntime regions (maximal connected groups of unsupported nodes). Stage
numbers are assigned in topological order: a node goes to the earliest stage after its
producers' stages that has its kind (stages alternate TVM, onnxruntime, TVM, ...), so data
only flows forward and no stage waits on a later one.

Each stage is cut out of the graph as an IR graph of its own (`unit_graph`: its nodes,
the constants they read, typed inputs and outputs), so a TVM stage is lowered from the IR
directly and an onnxruntime region is that graph exported.

The refusals are found by lowering the whole graph once (`plan`); when nothing is refused,
that lowering is the compile's, and nothing is lowered twice."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ..ir import Attr, AttrKind, Graph, Value
from ..ir.clone import clone_subgraph

TVM, ORT = "tvm", "ort"


@dataclass
class Unit:
    kind: str
    nodes: list                     # node names, in graph order
    inputs: list = field(default_factory=list)    # value names read from outside
    outputs: list = field(default_factory=list)   # value names needed later (or model outputs)
    graph: Optional[Graph] = None   # the unit cut out of the whole graph (unit_graph)


@dataclass
class Plan:
    """What `plan` found: the whole graph's lowering when nothing needs onnxruntime, else
    the (op, node) pairs that do."""

    lowered: Optional[object] = None
    fallback: list = field(default_factory=list)


def plan(graph: Graph, target) -> Plan:
    """Lower ``graph`` (prepared: the compile's pipeline has run) once, collecting every
    refusal. Nothing refused: the lowering is returned for the build. Else: (op, node) of
    the top-level nodes that need onnxruntime (ops without a lowering, nodes whose lowering
    refuses them; a node whose subgraph holds such a node counts as a whole)."""
    from .lower import LoweringRefusedError, lower, unsupported_nodes

    bad = {nm for _, nm in unsupported_nodes(graph)}
    if not bad:
        try:
            return Plan(lowered=lower(graph, target=target))
        except LoweringRefusedError as e:
            bad = {nm for _, nm in e.ops}
    out = []
    for n in graph.nodes:
        inner = any(m.name in bad for sg in n.subgraphs() for m in sg.walk())
        if n.name in bad or inner:
            out.append((n.qualified_op, n.name))
    return Plan(fallback=out)


def partition(graph: Graph, bad_names: set) -> list[Unit]:
    """Stages of ``graph`` in run order (empty TVM stages left out)."""
    stage: dict[str, int] = {}
    producer: dict[str, str] = {}
    for n in graph.nodes:
        for o in n.outputs:
            if o is not None:
                producer[o.name] = n.name

    def reads(n):
        names = [v.name for v in n.inputs if v is not None]
        for sg in n.subgraphs():  # outer values captured by subgraphs
            for m in sg.walk():
                names += [v.name for v in m.inputs if v is not None]
        return [x for x in names if x in producer and producer[x] != n.name]

    for n in graph.nodes:
        kind = 1 if n.name in bad_names else 0
        s = max((stage[producer[x]] for x in reads(n)), default=0)
        if s % 2 != kind:
            s += 1
        stage[n.name] = s
    # units: TVM stages whole, onnxruntime stages split into connected components
    by_stage: dict[int, list] = {}
    for n in graph.nodes:
        by_stage.setdefault(stage[n.name], []).append(n)
    units: list[Unit] = []
    for s in sorted(by_stage):
        nodes = by_stage[s]
        if s % 2 == 0:
            units.append(Unit(TVM, [n.name for n in nodes]))
            continue
        parent = {n.name: n.name for n in nodes}

        def find(x):
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        for n in nodes:
            for x in reads(n):
                p = producer[x]
                if p in parent:
                    parent[find(p)] = find(n.name)
        groups: dict[str, list] = {}
        for n in nodes:
            groups.setdefault(find(n.name), []).append(n.name)
        units += [Unit(ORT, g) for g in groups.values()]
    # inputs / outputs of each unit
    owner = {nm: i for i, u in enumerate(units) for nm in u.nodes}
    nodes_by_name = {n.name: n for n in graph.nodes}
    graph_outputs = [o.name for o in graph.outputs]
    needed_later: dict[str, set] = {}
    for i, u in enumerate(units):
        seen = []
        for nm in u.nodes:
            n = nodes_by_name[nm]
            for x in [v.name for v in n.inputs if v is not None] + reads(n):
                if x in seen:
                    continue
                if x in producer and owner[producer[x]] == i:
                    continue
                if x in producer or graph.lookup(x) is not None and graph.lookup(x).is_graph_input:
                    seen.append(x)
                    if x in producer:
                        needed_later.setdefault(x, set()).add(i)
        u.inputs = seen
    for i, u in enumerate(units):
        outs = []
        for nm in u.nodes:
            for o in nodes_by_name[nm].outputs:
                if o is not None and (o.name in needed_later or o.name in graph_outputs) and o.name not in outs:
                    outs.append(o.name)
        u.outputs = outs
    return [u for u in units if u.nodes and (u.outputs or u.kind == ORT)]


def unit_graphs(graph: Graph, units: list[Unit]) -> None:
    """Cut each unit out of ``graph`` as an IR graph of its own (sets ``unit.graph``): its
    nodes (subgraphs included), the constants they read, inputs typed as the values they
    stand for, and the unit's outputs."""
    nodes = {n.name: n for n in graph.nodes}
    for i, u in enumerate(units):
        u.graph = _cut(graph, [nodes[nm] for nm in u.nodes], u, f"{graph.name}_{u.kind}{i}")


def _cut(graph: Graph, nodes: list, u: Unit, name: str) -> Graph:
    out = Graph(name, dict(graph.opset_imports))
    vmap: dict[int, Value] = {}
    for x in u.inputs:
        v = graph.lookup(x)
        vmap[id(v)] = out.add_input(x, v.type)

    def need_constants(node) -> None:
        # constants of the whole graph that this node (or a subgraph of it) reads
        for v in node.inputs:
            if v is not None and v.is_constant and id(v) not in vmap and v.owner is graph:
                vmap[id(v)] = out.add_constant(v.name, v.const, provenance=v.provenance)
        for sg in node.subgraphs():
            for m in sg.walk():
                need_constants(m)

    for n in nodes:
        need_constants(n)
        attrs = {k: Attr(AttrKind.GRAPH, clone_subgraph(a.value, out, vmap)) if a.kind is AttrKind.GRAPH else a
                 for k, a in n.attrs.items()}
        m = out.add_node(n.op_type, [None if v is None else vmap[id(v)] for v in n.inputs],
                         [None if o is None else o.type for o in n.outputs], attrs, name=n.name, domain=n.domain,
                         output_names=[None if o is None else o.name for o in n.outputs], provenance=n.provenance)
        for o, mo in zip(n.outputs, m.outputs):
            if o is not None:
                vmap[id(o)] = mo
    out.outputs = [vmap[id(graph.lookup(x))] for x in u.outputs]
    return out
