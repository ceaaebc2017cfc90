"""Dead code elimination: remove nodes none of whose outputs is used, and constants
nothing reads. Graph outputs are never removed, nor graph inputs (the signature stays).

Each removed node or constant is one rewrite application (``dce.dead-node``,
``dce.dead-constant``) for ``--bisect-limit``.
"""

from __future__ import annotations

from dataclasses import dataclass

from graphopt.ir import Graph
from graphopt.pipeline.base import Pass, PassContext, all_graphs, register_pass


@register_pass
@dataclass
class DeadCodeElimination(Pass):
    name = "dce"
    summary = "remove nodes whose outputs are unused and constants nothing reads (graph outputs stay)"

    remove_constants: bool = True

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        changed = False
        for g in list(all_graphs(graph)):
            if g is not graph and g.parent is None:
                continue
            # Reverse topological order: a node's users are visited (and removed) first.
            for node in reversed(g.nodes):
                if all(o is None or not o.has_uses() for o in node.outputs):
                    if not ctx.allow("dce.dead-node", [node]):
                        ctx.explain_failed("dce.dead-node", node.name, "the bisect limit was reached")
                        continue
                    ctx.explain_applied("dce.dead-node", f"{node.name} ({node.qualified_op})")
                    g.erase_node(node)
                    changed = True
            if self.remove_constants:
                for c in g.constants:
                    if not c.has_uses():
                        if not ctx.allow("dce.dead-constant", (), f"constant %{c.name}: {c.type}"):
                            continue
                        ctx.explain_applied("dce.dead-constant", f"%{c.name}")
                        g.remove_constant(c)
                        changed = True
        return changed
