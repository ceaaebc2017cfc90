"""The verifier: checks that a graph is well formed.

SSA (one definition per name along a scope chain), acyclic and in topological order,
every use defined before it is read, use lists consistent with node inputs, graph outputs
produced, constants typed like their data, and each node's output types consistent with
the op registry's inference (dtype equal; rank and static dims equal where both known;
symbols match anything). Messages name the node.
"""

from __future__ import annotations

from typing import Optional

from ..errors import GraphoptError  # a leaf module (no imports): the layering holds
from .graph import Graph, Node, Use, Value
from .types import TensorType


class VerificationError(GraphoptError, ValueError):
    """A graph that is not well formed; ``problems`` lists each, naming its node."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        # One line, as every user error: the CLI prints it after "graphopt: error:".
        super().__init__("graph verification failed: " + "; ".join(problems[:10]) + more)


# The registry's op semantics: ONNX's default domain at the one opset the importer
# normalizes every model to (frontend.onnx_import.TARGET_OPSET).
OPSET = 21


def _compatible(declared: TensorType, inferred: TensorType) -> Optional[str]:
    if declared.dtype is not inferred.dtype:
        return f"dtype {declared.dtype.short}, but the registry infers {inferred.dtype.short}"
    if declared.shape is None or inferred.shape is None:
        return None
    if len(declared.shape) != len(inferred.shape):
        return f"shape {declared}, but the registry infers rank {len(inferred.shape)} ({inferred})"
    for i, (a, b) in enumerate(zip(declared.shape, inferred.shape)):
        if isinstance(a, int) and isinstance(b, int) and a != b:
            return f"type {declared}, but the registry infers {inferred} (axis {i})"
    return None


class _Verifier:
    def __init__(self, check_types: bool):
        self.problems: list[str] = []
        self.check_types = check_types
        self.node_names: dict[str, Node] = {}

    def fail(self, msg: str) -> None:
        self.problems.append(msg)

    def graph(self, g: Graph, visible: dict[str, Value], is_main: bool) -> None:
        scope = dict(visible)
        local: set[str] = set()

        def define(v: Value, what: str) -> None:
            if v.name in scope:
                self.fail(f"{what}: value %{v.name} is defined more than once")
            scope[v.name] = v
            local.add(v.name)

        for v in g.inputs:
            if v.owner is not g:
                self.fail(f"graph {g.name!r}: input %{v.name} does not belong to the graph")
            define(v, f"graph {g.name!r} input")
        for c in g.constants:
            define(c, f"graph {g.name!r} constant")
            if c.const is not None and c.const.type != c.type:
                self.fail(f"constant %{c.name}: declared {c.type}, its data is {c.const.type}")
        for n in g.nodes:
            where = f"node {n.name!r} ({n.qualified_op})"
            if n.graph is not g:
                self.fail(f"{where}: is listed in graph {g.name!r} but points to another graph")
            if n.name in self.node_names and self.node_names[n.name] is not n:
                self.fail(f"{where}: node name is used twice")
            self.node_names[n.name] = n
            for i, v in enumerate(n.inputs):
                if v is None:
                    continue
                if scope.get(v.name) is not v:
                    if v.producer is not None and v.producer.graph is g:
                        self.fail(f"{where}: input {i} %{v.name} is read before node {v.producer.name!r} "
                                  "defines it (not in topological order, or a cycle)")
                    else:
                        self.fail(f"{where}: input {i} %{v.name} is not defined in this graph or an enclosing one")
                if Use(n, i) not in v._uses:
                    self.fail(f"{where}: input {i} %{v.name} is missing from that value's use list")
            for sg in n.subgraphs():
                if sg.parent is not n:
                    self.fail(f"{where}: subgraph {sg.name!r} does not point back to its node")
                self.graph(sg, scope, False)
            for j, o in enumerate(n.outputs):
                if o is None:
                    continue
                if o.producer is not n or o.output_index != j:
                    self.fail(f"{where}: output {j} %{o.name} does not point back to its producer")
                define(o, where)
                for u in o._uses:
                    if u.index >= len(u.node.inputs) or u.node.inputs[u.index] is not o:
                        self.fail(f"value %{o.name}: stale use by node {u.node.name!r} input {u.index}")
            if self.check_types:
                self.types(n, where)
        if is_main and not g.outputs:
            self.fail(f"graph {g.name!r} has no outputs")
        version = g.opset_imports.get("", OPSET) if is_main else OPSET
        if version != OPSET:
            self.fail(f"graph {g.name!r} imports the default domain at opset {version}; graphopt's ops are "
                      f"opset {OPSET}'s")
        for k, o in enumerate(g.outputs):
            if o is None or scope.get(o.name) is not o:
                self.fail(f"graph {g.name!r}: output {k} %{getattr(o, 'name', '?')} is not defined in the graph")

    def types(self, n: Node, where: str) -> None:
        from ..ops import InferError, get_schema, infer_node

        if get_schema(n.op_type, n.domain) is None:
            self.fail(f"{where}: op is not in the registry")
            return
        try:
            inferred = infer_node(n)
        except InferError as e:
            self.fail(f"{where}: {e}")
            return
        for j, (o, t) in enumerate(zip(n.outputs, inferred)):
            if o is None or t is None:
                continue
            msg = _compatible(o.type, t)
            if msg:
                self.fail(f"{where}: output {j} %{o.name} has {msg}")


def verify(graph: Graph, *, check_types: bool = True) -> None:
    """Raise VerificationError listing every problem found (each names its node)."""
    v = _Verifier(check_types)
    v.graph(graph, {}, graph.parent is None)
    if v.problems:
        raise VerificationError(v.problems)
