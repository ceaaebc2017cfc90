"""Graphviz DOT of a graph: nodes as boxes (op, name), values as edges labelled with
their types, graph inputs and outputs as ellipses, constants as small notes."""

from __future__ import annotations

import json

from ..ir import Graph, Value


def _q(s: str) -> str:
    return json.dumps(s)


def to_dot(graph: Graph, *, max_constants: int = 2000) -> str:
    lines = [f"digraph {_q(graph.name)} {{", "  rankdir=TB;", "  node [fontname=\"Helvetica\", fontsize=10];",
             "  edge [fontname=\"Helvetica\", fontsize=8];"]
    ids: dict[int, str] = {}

    def vid(v: Value) -> str:
        return ids.setdefault(id(v), f"v{len(ids)}")

    for v in graph.inputs:
        lines.append(f"  {vid(v)} [shape=ellipse, style=filled, fillcolor=\"#dbeafe\", label={_q(v.name + chr(10) + str(v.type))}];")
    used_consts = [c for c in graph.constants][:max_constants]
    for c in used_consts:
        lines.append(f"  {vid(c)} [shape=note, fontsize=8, label={_q(c.name + chr(10) + str(c.type))}];")
    node_ids = {}
    for i, n in enumerate(graph.nodes):
        nid = f"n{i}"
        node_ids[id(n)] = nid
        label = n.qualified_op + "\n" + n.name
        if n.provenance is not None:
            label += f"\n<- {n.provenance.rule}"
        lines.append(f"  {nid} [shape=box, style=\"rounded,filled\", fillcolor=\"#f3f4f6\", label={_q(label)}];")
    producer_id = {}
    for v in graph.inputs:
        producer_id[id(v)] = vid(v)
    for c in used_consts:
        producer_id[id(c)] = vid(c)
    for n in graph.nodes:
        for o in n.outputs:
            if o is not None:
                producer_id[id(o)] = node_ids[id(n)]
    for n in graph.nodes:
        for i, v in enumerate(n.inputs):
            if v is None or id(v) not in producer_id:
                continue
            lines.append(f"  {producer_id[id(v)]} -> {node_ids[id(n)]} [label={_q(str(v.type))}];")
    for k, o in enumerate(graph.outputs):
        oid = f"out{k}"
        lines.append(f"  {oid} [shape=ellipse, style=filled, fillcolor=\"#dcfce7\", label={_q(o.name + chr(10) + str(o.type))}];")
        if id(o) in producer_id:
            lines.append(f"  {producer_id[id(o)]} -> {oid};")
    lines.append("}")
    return "\n".join(lines) + "\n"
