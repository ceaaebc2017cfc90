"""Common subexpression elimination.

Two nodes are the same expression when they have the same op (domain, type), the same
attributes and the same input values, in order, and the same number of outputs: the later
one's outputs are replaced by the earlier one's (which comes first in topological order,
so it dominates every user of the later one). Two constants are the same when their dtype,
shape and bytes are equal (NaNs included).

Conditions: ops whose registry traits say they are not deterministic (Dropout) and nodes
holding subgraphs are never merged; a graph output keeps its name (when the later node's
output is a graph output, the earlier value is renamed to it, or the merge is skipped if
that cannot be done).
"""

from __future__ import annotations

from dataclasses import dataclass

from graphopt.ir import AttrKind, Graph, Node, Value
from graphopt.ops import get_schema
from graphopt.pipeline.base import Pass, PassContext, all_graphs, register_pass
from graphopt.rewrite import replace_node, why_not_replace


def _deterministic(node: Node) -> bool:
    s = get_schema(node.op_type, node.domain)
    return s is not None and s.traits.deterministic


def _key(node: Node):
    attrs = []
    for k in sorted(node.attrs):
        a = node.attrs[k]
        if a.kind is AttrKind.TENSOR:
            attrs.append((k, "tensor", a.value.type, a.value.digest))
        else:
            attrs.append((k, a.kind.value, a.value))
    return (node.domain, node.op_type, tuple(id(v) if v is not None else None for v in node.inputs),
            tuple(attrs), len(node.outputs), tuple(o is None for o in node.outputs))


@register_pass
@dataclass
class CommonSubexpressionElimination(Pass):
    name = "cse"
    summary = "merge nodes with the same op, attributes and inputs, and constants with equal data"

    merge_constants: bool = True

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        changed = False
        for g in list(all_graphs(graph)):
            if self.merge_constants:
                changed |= self._constants(graph, g, ctx)
            changed |= self._nodes(graph, g, ctx)
        return changed

    def _constants(self, root: Graph, g: Graph, ctx: PassContext) -> bool:
        changed = False
        seen: dict[tuple, list[Value]] = {}
        for c in g.constants:
            data = c.const
            key = (data.dtype, data.shape, data.digest)
            bucket = seen.setdefault(key, [])
            target = next((k for k in bucket if k.const.equals(data)), None)
            if target is None:
                bucket.append(c)
                continue
            keep, drop = target, c
            if drop.is_graph_output() and not keep.is_graph_output():
                # keep the graph output's name: drop the other one instead
                keep, drop = drop, keep
                bucket[bucket.index(target)] = keep
            why = why_not_replace(drop, keep)
            if why:
                ctx.explain_failed("cse.duplicate-constant", f"%{drop.name}", why)
                continue
            if not ctx.allow("cse.duplicate-constant", (), f"%{drop.name} -> %{keep.name} ({keep.type})"):
                continue
            root.replace_all_uses(drop, keep)
            g.remove_constant(drop)
            ctx.explain_applied("cse.duplicate-constant", f"%{drop.name}")
            changed = True
        return changed

    def _nodes(self, root: Graph, g: Graph, ctx: PassContext) -> bool:
        changed = False
        seen: dict[tuple, Node] = {}
        for node in g.nodes:
            if not _deterministic(node) or node.subgraphs():
                continue
            key = _key(node)
            first = seen.get(key)
            if first is None:
                seen[key] = node
                continue
            if not _same_attrs(first, node):
                continue
            site = f"{node.name} ({node.qualified_op})"
            why = None
            for old, new in zip(node.outputs, first.outputs):
                if old is not None and (why := why_not_replace(old, new)):
                    break
            if why:
                ctx.explain_failed("cse.duplicate-node", site, f"same as {first.name}, but {why}")
                continue
            if not ctx.allow("cse.duplicate-node", [node, first], f"{node.name} is the same expression as {first.name}"):
                continue
            replace_node(root, node, list(first.outputs))
            ctx.explain_applied("cse.duplicate-node", site)
            changed = True
        return changed


def _same_attrs(a: Node, b: Node) -> bool:
    for k in a.attrs:
        x, y = a.attrs[k], b.attrs[k]
        if x.kind is AttrKind.TENSOR:
            if not x.value.equals(y.value):
                return False
        elif x != y:
            return False
    return True
