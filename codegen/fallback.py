"""``fallback="ort"``: ops graphopt cannot lower run on onnxruntime inside the artifact.

The graph is cut into stages that run one after the other: TVM stages (lowered and built
as usual) and onnxruntime regions (maximal connected groups of unsupported nodes, each its
own ONNX model). Stage numbers are assigned in topological order: a node goes to the
earliest stage after its producers' stages that has its kind (stages alternate TVM,
onnxruntime, TVM, ...), so data only flows forward and no stage waits on a later one.
Each stage is cut out of the exported ONNX model (nodes, the initializers they read, and
typed inputs/outputs from the IR's value types)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ..ir import Graph

TVM, ORT = "tvm", "ort"


@dataclass
class Unit:
    kind: str
    nodes: list                     # node names, in graph order
    inputs: list = field(default_factory=list)    # value names read from outside
    outputs: list = field(default_factory=list)   # value names needed later (or model outputs)
    model: Optional[object] = None  # onnx.ModelProto of the unit


def fallback_nodes(graph: Graph) -> list[tuple[str, str]]:
    """(op, node name) of top-level nodes that need onnxruntime: ops without a lowering,
    and nodes whose lowering refuses them (found by lowering the graph once); a node
    whose subgraph holds such a node counts as a whole."""
    from .lowering import LoweringRefusedError, fold_for_lowering, lower, unsupported_nodes

    folded, _ = fold_for_lowering(graph)  # a node that folds away needs no runtime at all
    bad = {nm for _, nm in unsupported_nodes(folded)}
    if not bad:
        try:
            lower(folded, fold=False)
        except LoweringRefusedError as e:
            bad = {nm for _, nm in e.ops}
    if not bad:
        return []
    out = []
    for n in folded.nodes:
        inner = any(m.name in bad for sg in n.subgraphs() for m in sg.walk())
        if n.name in bad or inner:
            out.append((n.qualified_op, n.name))
    return out


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


def unit_models(graph: Graph, units: list[Unit]) -> None:
    """Cut each unit's ONNX model out of the exported graph (sets ``unit.model``)."""
    from onnx import helper

    from ..frontend.onnx_export import export_onnx, type_to_proto

    proto = export_onnx(graph)
    by_name = {n.name: n for n in proto.graph.node}
    inits = {t.name: t for t in proto.graph.initializer}

    def used(node, acc):
        acc.update(x for x in node.input if x)
        for a in node.attribute:
            for g in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                for m in g.node:
                    used(m, acc)

    for i, u in enumerate(units):
        nodes = [by_name[nm] for nm in u.nodes]
        names: set = set()
        for n in nodes:
            used(n, names)
        typ = lambda nm: type_to_proto(nm, graph.lookup(nm).type)  # noqa: E731
        g = helper.make_graph(nodes, f"{graph.name}_{u.kind}{i}", [typ(x) for x in u.inputs],
                              [typ(x) for x in u.outputs], initializer=[inits[x] for x in sorted(names) if x in inits])
        u.model = helper.make_model(g, opset_imports=list(proto.opset_import), ir_version=proto.ir_version)

