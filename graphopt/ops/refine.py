"""Re-running type inference over a whole graph to learn what it now can: after symbols were
bound to sizes, or a computed shape became a constant, the registry derives static dims
where the stored types still hold symbols it once had to make up (``reshape_d0``)."""

from __future__ import annotations

from typing import Optional

from ..ir import Graph, Node, TensorType
from .registry import InferError, get_schema, infer_node


def refined(declared: TensorType, inferred: Optional[TensorType]) -> tuple[TensorType, Optional[str]]:
    """``declared`` with what ``inferred`` knows better (a size for a symbol, a shape for an
    unknown rank), and why not where the two contradict each other."""
    if inferred is None:
        return declared, None
    if declared.dtype is not inferred.dtype:
        return declared, f"dtype {declared.dtype.short}, but the registry now infers {inferred.dtype.short}"
    if declared.shape is None:
        return TensorType(declared.dtype, inferred.shape), None
    if inferred.shape is None:
        return declared, None
    if len(declared.shape) != len(inferred.shape):
        return declared, f"type {declared}, but the registry now infers {inferred}"
    dims = []
    for axis, (a, b) in enumerate(zip(declared.shape, inferred.shape)):
        if isinstance(a, int) and isinstance(b, int) and a != b:
            return declared, f"type {declared}, but the registry now infers {inferred} (axis {axis})"
        # A symbol the registry made up (or one the declared type names) never replaces a size.
        dims.append(b if isinstance(b, int) else a)
    return TensorType(declared.dtype, tuple(dims)), None


def refine_types(graph: Graph, *, strict: bool = True) -> bool:
    """Re-infer every node's output types in order (a node's subgraphs before the node) and
    keep what inference knows better. Returns whether a type changed (journaled through
    ``set_output_type``). A node inference now refuses, or a size that disagrees with a
    stored one, raises InferError naming the node when ``strict``; otherwise that node
    keeps its types."""
    changed = False
    for node in graph.nodes:
        for sg in node.subgraphs():
            changed |= refine_types(sg, strict=strict)
        changed |= _refine_node(graph, node, strict)
    return changed


def _refine_node(graph: Graph, node: Node, strict: bool) -> bool:
    if get_schema(node.op_type, node.domain) is None:
        return False
    where = f"node {node.name!r} ({node.qualified_op})"
    try:
        inferred = infer_node(node)
    except InferError as e:
        if strict:
            raise InferError(f"{where}: {e}") from e
        return False
    news = []
    for o, t in zip(node.outputs, inferred):
        if o is None:
            continue
        new, why = refined(o.type, t)
        if why is not None:
            if strict:
                raise InferError(f"{where}: output %{o.name} has {why}")
            return False
        news.append((o, new))
    changed = False
    for o, new in news:
        if new != o.type:
            graph.set_output_type(o, new)
            changed = True
    return changed
