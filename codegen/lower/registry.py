"""Which function lowers which op: ``register_lowering`` fills the tables, the driver asks
``lowering_for``.

A lowering is a function ``(ctx, node) -> relax expression or list of them`` (one per node
output; None for an omitted optional output). One registered for every target goes into
`TABLE`; one registered for a target kind ("cpu", "cuda") goes into ``TARGET_TABLES[kind]``
and shadows the generic one on that kind (graphopt's packed CPU kernels for Conv, Gemm and
MatMul, whose schedules are CPU ones). Tests patch these dicts to break or take out a
lowering.
"""

from __future__ import annotations

from typing import Callable, Optional

from ...ir import Graph, Node, is_fused_group
from ...ops import has_decomposition, supported_ops

TARGET_KINDS = ("cpu", "cuda")

# qualified op -> the lowering used on every target kind without its own
TABLE: dict[str, Callable] = {}
# target kind -> qualified op -> the lowering used on that kind
TARGET_TABLES: dict[str, dict[str, Callable]] = {k: {} for k in TARGET_KINDS}

# Ops lowered without a table entry: Constant nodes become values, fused groups functions
# (and so do named fused ops without an entry, from their reference decomposition).
BUILT_IN = frozenset({"Constant", "graphopt.FusedGroup"})


def _qualified(op: str, domain: str) -> str:
    return f"{domain}.{op}" if domain else op


def register_lowering(*ops: str, domain: str = "", target: Optional[str] = None):
    """Decorator: the function lowers ``ops`` (of ``domain``) on every target kind, or
    (``target`` "cpu"/"cuda") on that kind only, in place of the generic lowering."""
    if target is not None and target not in TARGET_KINDS:
        raise ValueError(f"register_lowering: unknown target kind {target!r} (known: {', '.join(TARGET_KINDS)})")
    table = TABLE if target is None else TARGET_TABLES[target]

    def deco(fn):
        for op in ops:
            table[_qualified(op, domain)] = fn
        return fn

    return deco


def lowering_for(node: Node, target_kind: Optional[str] = None) -> Optional[Callable]:
    """The lowering of ``node``'s op on ``target_kind`` (None: the generic one), or None."""
    op = node.qualified_op
    if target_kind is not None:
        fn = TARGET_TABLES.get(target_kind, {}).get(op)
        if fn is not None:
            return fn
    return TABLE.get(op)


def lowered_ops() -> set[str]:
    """The ops (qualified names) this lowering supports on some target."""
    ops = set(TABLE) | BUILT_IN | {s.qualified for s in supported_ops() if s.decomposition is not None}
    for t in TARGET_TABLES.values():
        ops |= set(t)
    return ops


def unsupported_nodes(graph: Graph, target_kind: Optional[str] = None) -> list[tuple[str, str]]:
    """(op, node name) of every node (subgraphs included) that cannot be lowered for
    ``target_kind`` (None: by the generic lowerings)."""
    return [(n.qualified_op, n.name) for n in graph.walk()
            if not is_fused_group(n) and not has_decomposition(n) and lowering_for(n, target_kind) is None]
