"""Replacing values and erasing what became dead, keeping graph output names."""

from __future__ import annotations

from typing import Iterable, Optional, Sequence

from ..ir import Graph, Node, Value


def why_not_replace(old: Value, new: Value) -> Optional[str]:
    """None when ``old`` can be replaced by ``new`` keeping graph output names; else why not."""
    if old is new:
        return "the replacement is the value itself"
    if old.type.dtype is not new.type.dtype:
        return f"%{new.name} is {new.type.dtype.short}, %{old.name} is {old.type.dtype.short}"
    if not old.is_graph_output():
        return None
    if new.is_graph_output():
        return f"%{old.name} and %{new.name} are both graph outputs"
    if new.is_graph_input:
        return f"%{old.name} is a graph output and %{new.name} a graph input: the output would be renamed"
    if new.owner is not old.owner:
        return f"%{old.name} is a graph output and %{new.name} is defined in another graph"
    return None


def replace_values(graph: Graph, pairs: Sequence[tuple[Value, Value]]) -> list[tuple[Value, str]]:
    """Make every use of each ``old`` use its ``new``; returns the (value, name) renames still
    to do so that graph outputs keep their names (done at once where the name is free)."""
    pending: list[tuple[Value, str]] = []
    for old, new in pairs:
        was_output = old.is_graph_output()
        graph.replace_all_uses(old, new)
        if was_output:
            pending.append((new, old.name))
    return pending


def replace_node(graph: Graph, node: Node, new_values: Sequence[Optional[Value]]) -> list[tuple[Value, str]]:
    """Replace each output of ``node`` by the matching new value (None: the output must be
    unused), erase the node, and return the renames still to do (see `replace_values`)."""
    g = node.graph
    pairs = [(old, new) for old, new in zip(node.outputs, new_values) if old is not None and new is not None]
    pending = replace_values(graph, pairs)
    g.erase_node(node)
    return finish_renames(graph, pending)


def finish_renames(graph: Graph, pending: Sequence[tuple[Value, str]]) -> list[tuple[Value, str]]:
    """Give each value its graph output's old name where that name is now free; returns
    the renames that could not be done yet."""
    return [(v, nm) for v, nm in pending if not _try_rename(graph, v, nm)]


def _try_rename(graph: Graph, v: Value, name: str) -> bool:
    g = v.owner
    if g is None or v.name == name:
        return True
    if g.lookup(name) is not None:
        return False
    graph.rename_value(v, name)
    return True


def erase_dead(graph: Graph, nodes: Iterable[Node]) -> list[Node]:
    """Erase those of ``nodes`` (and, transitively, their producers among them) whose
    outputs are all unused. Returns the erased nodes."""
    todo = list(nodes)
    erased = []
    changed = True
    while changed:
        changed = False
        for n in list(todo):
            if n.graph is None:
                todo.remove(n)
                continue
            if all(o is None or not o.has_uses() for o in n.outputs):
                n.graph.erase_node(n)
                erased.append(n)
                todo.remove(n)
                changed = True
    return erased
