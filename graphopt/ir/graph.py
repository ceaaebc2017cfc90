"""Graph, Node and Value: graphopt's SSA graph IR.

Every structural change goes through the methods of `Graph` (the mutation API). Each
records a `Change` in the root graph's journal, so a pass manager can tell whether a pass
changed anything and an instrument can say what. Uses are returned as tuples (snapshots):
rewriting while iterating over them is safe.

Names: value names are unique along a scope chain (a subgraph may read its ancestors'
values but not redefine their names), as ONNX requires. `Graph.fresh_name` hands out
names unused anywhere in the whole graph tree.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Iterable, Iterator, Mapping, NamedTuple, Optional, Sequence

from .attributes import Attr, AttrKind, Region
from .tensor import TensorData
from .types import TensorType


class IRError(ValueError):
    """Misuse of the mutation API (an error in a pass, not in the model)."""


class Use(NamedTuple):
    node: "Node"
    index: int


@dataclass(frozen=True)
class Provenance:
    """Which rewrite created a node, and from which source nodes (by name)."""

    rule: str
    sources: tuple[str, ...] = ()


@dataclass(frozen=True)
class Change:
    """One journal entry: the kind of mutation and the names it touched."""

    kind: str
    subject: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.kind} {self.subject}" + (f" ({self.detail})" if self.detail else "")


class Value:
    """An SSA value: a graph input, a constant, or one output of a node."""

    __slots__ = ("_name", "type", "_producer", "_index", "_const", "_graph", "_uses", "provenance", "__weakref__")

    def __init__(self, name: str, type: TensorType):
        self._name = name
        self.type = type
        self._producer: Optional[Node] = None
        self._index = -1
        self._const: Optional[TensorData] = None
        self._graph: Optional[Graph] = None
        self._uses: list[Use] = []
        # For a constant a rewrite created (folding): the rule and the nodes it came from.
        self.provenance: Optional[Provenance] = None

    @property
    def name(self) -> str:
        return self._name

    @property
    def producer(self) -> Optional["Node"]:
        return self._producer

    @property
    def output_index(self) -> int:
        return self._index

    @property
    def const(self) -> Optional[TensorData]:
        """The data of a constant (an initializer), else None."""
        return self._const

    @property
    def is_constant(self) -> bool:
        return self._const is not None

    @property
    def owner(self) -> Optional["Graph"]:
        """The graph this value is defined in."""
        return self._producer.graph if self._producer is not None else self._graph

    @property
    def is_graph_input(self) -> bool:
        return self._graph is not None and self._const is None

    def uses(self) -> tuple[Use, ...]:
        return tuple(self._uses)

    def consumers(self) -> tuple["Node", ...]:
        seen: dict[int, Node] = {}
        for u in self._uses:
            seen.setdefault(id(u.node), u.node)
        return tuple(seen.values())

    def is_graph_output(self) -> bool:
        g = self.owner
        return g is not None and any(o is self for o in g.outputs)

    def has_uses(self) -> bool:
        return bool(self._uses) or self.is_graph_output()

    def __repr__(self) -> str:
        return f"%{self._name}: {self.type}"


class Node:
    """One operator application. Inputs may be None (an omitted optional input); so may
    outputs (an omitted optional output)."""

    __slots__ = ("op_type", "domain", "_name", "_inputs", "_outputs", "_attrs", "provenance", "_graph",
                 "__weakref__")

    def __init__(self, op_type: str, domain: str = "", name: str = ""):
        self.op_type = op_type
        self.domain = domain
        self._name = name
        self._inputs: list[Optional[Value]] = []
        self._outputs: list[Optional[Value]] = []
        self._attrs: dict[str, Attr] = {}
        self.provenance: Optional[Provenance] = None
        self._graph: Optional[Graph] = None

    @property
    def name(self) -> str:
        return self._name

    @property
    def graph(self) -> Optional["Graph"]:
        return self._graph

    @property
    def inputs(self) -> tuple[Optional[Value], ...]:
        return tuple(self._inputs)

    @property
    def outputs(self) -> tuple[Optional[Value], ...]:
        return tuple(self._outputs)

    @property
    def output(self) -> Value:
        """The only output (an error for multi-output nodes)."""
        if len(self._outputs) != 1 or self._outputs[0] is None:
            raise IRError(f"node {self.describe()} does not have exactly one output")
        return self._outputs[0]

    @property
    def attrs(self) -> Mapping[str, Attr]:
        return MappingProxyType(self._attrs)

    def attr(self, name: str, default=None):
        """The plain value of an attribute, or ``default`` when absent."""
        a = self._attrs.get(name)
        return default if a is None else a.value

    @property
    def qualified_op(self) -> str:
        return f"{self.domain}.{self.op_type}" if self.domain else self.op_type

    def subgraphs(self) -> list["Graph"]:
        return [a.value for a in self._attrs.values() if a.kind is AttrKind.GRAPH]

    def describe(self) -> str:
        return f"{self.qualified_op} {self._name!r}" if self._name else self.qualified_op

    def __repr__(self) -> str:
        return f"<Node {self.describe()}>"


class Graph(Region):
    """A graph: inputs, constants, nodes in topological order, outputs.

    A graph held by a node's attribute (If/Loop bodies, fused groups) has ``parent`` set to
    that node; its nodes may read values of enclosing graphs.
    """

    def __init__(self, name: str = "main", opset_imports: Optional[Mapping[str, int]] = None,
                 *, scope: Optional["Graph"] = None):
        """``scope``: the graph a subgraph under construction will live in, so that its
        nodes can read that graph's values before the subgraph is attached to a node."""
        self.name = name
        self.inputs: list[Value] = []
        self.outputs: list[Value] = []
        self._constants: dict[str, Value] = {}
        self._nodes: list[Node] = []
        self._values: dict[str, Value] = {}
        self._node_names: set[str] = set()
        self.parent: Optional[Node] = _ScopeAnchor(scope) if scope is not None else None  # type: ignore
        self.opset_imports: dict[str, int] = dict(opset_imports or {})
        self.doc_string: str = ""
        self._journal: list[Change] = []
        self._taken: set[str] = set()
        self._counter = itertools.count()

    # ------------------------------------------------------------------ reading
    @property
    def root(self) -> "Graph":
        g = self
        while g.parent is not None and g.parent.graph is not None:
            g = g.parent.graph
        return g

    @property
    def nodes(self) -> tuple[Node, ...]:
        return tuple(self._nodes)

    @property
    def constants(self) -> tuple[Value, ...]:
        return tuple(self._constants.values())

    @property
    def journal(self) -> tuple[Change, ...]:
        return tuple(self.root._journal)

    @property
    def journal_size(self) -> int:
        return len(self.root._journal)

    def lookup(self, name: str) -> Optional[Value]:
        """The value called ``name`` visible from this graph (own scope, then enclosing)."""
        g: Optional[Graph] = self
        while g is not None:
            v = g._values.get(name)
            if v is not None:
                return v
            g = g.parent.graph if g.parent is not None else None
        return None

    def values(self) -> Iterator[Value]:
        """Every value defined in this graph (not in subgraphs)."""
        return iter(tuple(self._values.values()))

    def walk(self) -> Iterator[Node]:
        """Every node of this graph and of its subgraphs, depth first."""
        for n in tuple(self._nodes):
            yield n
            for sg in n.subgraphs():
                yield from sg.walk()

    def __len__(self) -> int:
        return len(self._nodes)

    def __str__(self) -> str:
        from .printer import print_ir  # noqa: PLC0415  (printer needs graph only for annotations)

        return print_ir(self)

    # ------------------------------------------------------------------ names
    def _record(self, kind: str, subject: str, detail: str = "") -> None:
        self.root._journal.append(Change(kind, subject, detail))

    def _claim(self, name: str) -> None:
        self.root._taken.add(name)

    def fresh_name(self, hint: str = "v") -> str:
        root = self.root
        hint = hint or "v"
        if hint not in root._taken and self.lookup(hint) is None:
            return hint
        while True:
            cand = f"{hint}_{next(root._counter)}"
            if cand not in root._taken and self.lookup(cand) is None:
                return cand

    def _define(self, v: Value) -> None:
        if not v.name:
            raise IRError("a value needs a name")
        if self.lookup(v.name) is not None:
            raise IRError(f"value name {v.name!r} is already defined in graph {self.name!r} or its enclosing scopes")
        self._values[v.name] = v
        self._claim(v.name)

    def _undefine(self, v: Value) -> None:
        if self._values.get(v.name) is v:
            del self._values[v.name]

    # ------------------------------------------------------------------ graph inputs, outputs, constants
    def add_input(self, name: str, type: TensorType) -> Value:
        v = Value(name, type)
        v._graph = self
        self._define(v)
        self.inputs.append(v)
        self._record("add_input", name)
        return v

    def remove_input(self, v: Value) -> None:
        if v._uses:
            raise IRError(f"graph input %{v.name} still has uses")
        self.inputs.remove(v)
        self._undefine(v)
        v._graph = None
        self._record("remove_input", v.name)

    def add_constant(self, name: str, data: TensorData, *, provenance: Optional[Provenance] = None) -> Value:
        v = Value(name, data.type)
        v._const = data
        v.provenance = provenance
        v._graph = self
        self._define(v)
        self._constants[name] = v
        self._record("add_constant", name)
        return v

    def set_constant_data(self, v: Value, data: TensorData) -> None:
        if v._const is None:
            raise IRError(f"%{v.name} is not a constant")
        v._const = data
        v.type = data.type
        self._record("set_constant", v.name)

    def remove_constant(self, v: Value) -> None:
        if v.has_uses():
            raise IRError(f"constant %{v.name} still has uses")
        if self._constants.get(v.name) is not v:
            raise IRError(f"%{v.name} is not a constant of graph {self.name!r}")
        del self._constants[v.name]
        self._undefine(v)
        v._graph = None
        self._record("remove_constant", v.name)

    def set_outputs(self, values: Sequence[Value]) -> None:
        self.outputs = list(values)
        self._record("set_outputs", ",".join(v.name for v in values))

    def set_output(self, index: int, v: Value) -> None:
        old = self.outputs[index]
        self.outputs[index] = v
        self._record("set_output", str(index), f"{old.name} -> {v.name}")

    def rename_value(self, v: Value, new_name: str) -> None:
        g = v.owner
        if g is None:
            raise IRError(f"%{v.name} is not in a graph")
        if new_name == v.name:
            return
        if g.lookup(new_name) is not None:
            raise IRError(f"cannot rename %{v.name} to %{new_name}: the name is taken")
        old = v.name
        g._undefine(v)
        if old in g._constants:
            del g._constants[old]
            v._name = new_name
            g._constants[new_name] = v
        v._name = new_name
        g._define(v)
        self._record("rename", old, new_name)

    # ------------------------------------------------------------------ nodes
    def add_node(
        self,
        op_type: str,
        inputs: Sequence[Optional[Value]],
        output_types: Sequence[Optional[TensorType]],
        attrs: Optional[Mapping[str, object]] = None,
        *,
        name: str = "",
        domain: str = "",
        output_names: Optional[Sequence[Optional[str]]] = None,
        before: Optional[Node] = None,
        after: Optional[Node] = None,
        provenance: Optional[Provenance] = None,
    ) -> Node:
        """Create a node and insert it (at the end, or before/after an anchor node).

        ``output_types`` gives one type per output (None for an omitted optional output);
        ``attrs`` maps names to `Attr` or plain values (kinds inferred).
        """
        node = Node(op_type, domain, "")
        node.provenance = provenance
        node._name = self._fresh_node_name(name or op_type.lower())
        self._node_names_root().add(node._name)
        for key, val in (attrs or {}).items():
            a = Attr.infer(val)
            node._attrs[key] = a
            if a.kind is AttrKind.GRAPH:
                self._adopt(a.value, node)
        names = list(output_names) if output_names is not None else [None] * len(output_types)
        if len(names) != len(output_types):
            raise IRError("output_names and output_types differ in length")
        for i, (t, nm) in enumerate(zip(output_types, names)):
            if t is None:
                node._outputs.append(None)
                continue
            v = Value(nm if nm else self.fresh_name(f"{node._name}_out{i}" if len(output_types) > 1 else node._name), t)
            v._producer = node
            v._index = i
            self._define(v)
            node._outputs.append(v)
        for i, inp in enumerate(inputs):
            node._inputs.append(inp)
            if inp is not None:
                self._check_visible(inp, node)
                inp._uses.append(Use(node, i))
        node._graph = self
        self._insert(node, before, after)
        self._record("add_node", node._name, node.qualified_op)
        return node

    def _node_names_root(self) -> set[str]:
        return self.root._node_names

    def _fresh_node_name(self, hint: str) -> str:
        taken = self._node_names_root()
        if hint not in taken:
            return hint
        root = self.root
        while True:
            cand = f"{hint}_{next(root._counter)}"
            if cand not in taken:
                return cand

    def _adopt(self, sub: "Graph", node: Node) -> None:
        if isinstance(sub.parent, _ScopeAnchor):
            sub.parent = None
        if sub.parent is not None and sub.parent is not node:
            raise IRError(f"graph {sub.name!r} already belongs to node {sub.parent.describe()}")
        sub.parent = node
        # Names in the subgraph now share the root's namespace.
        root = self.root
        for n in sub.walk():
            root._node_names.add(n._name)
        stack = [sub]
        while stack:
            g = stack.pop()
            root._taken.update(g._values)
            root._taken.update(g._taken)
            root._node_names.update(g._node_names)
            g._taken = set()
            g._node_names = set()
            root._journal.extend(g._journal)
            g._journal = []
            for n in g._nodes:
                stack.extend(n.subgraphs())

    def _check_visible(self, v: Value, user: Node) -> None:
        if self.lookup(v.name) is not v:
            raise IRError(f"value %{v.name} used by {user.describe()} is not visible in graph {self.name!r}")

    def _insert(self, node: Node, before: Optional[Node], after: Optional[Node]) -> None:
        if before is not None and after is not None:
            raise IRError("give before or after, not both")
        if before is not None:
            self._nodes.insert(self._index_of(before), node)
        elif after is not None:
            self._nodes.insert(self._index_of(after) + 1, node)
        else:
            self._nodes.append(node)

    def _index_of(self, node: Node) -> int:
        for i, n in enumerate(self._nodes):
            if n is node:
                return i
        raise IRError(f"node {node.describe()} is not in graph {self.name!r}")

    def set_input(self, node: Node, index: int, value: Optional[Value]) -> None:
        """Point input ``index`` of ``node`` at ``value`` (None omits an optional input)."""
        old = node._inputs[index]
        if old is value:
            return
        if old is not None:
            old._uses.remove(Use(node, index))
        if value is not None:
            node.graph._check_visible(value, node)  # type: ignore[union-attr]
            value._uses.append(Use(node, index))
        node._inputs[index] = value
        self._record("set_input", node._name, f"{index}: {old.name if old else '_'} -> {value.name if value else '_'}")

    def set_inputs(self, node: Node, values: Sequence[Optional[Value]]) -> None:
        for i, old in enumerate(node._inputs):
            if old is not None:
                old._uses.remove(Use(node, i))
        node._inputs = []
        for i, v in enumerate(values):
            node._inputs.append(v)
            if v is not None:
                node.graph._check_visible(v, node)  # type: ignore[union-attr]
                v._uses.append(Use(node, i))
        self._record("set_inputs", node._name)

    def set_attr(self, node: Node, key: str, value: object) -> None:
        if value is None:
            if key in node._attrs:
                del node._attrs[key]
                self._record("del_attr", node._name, key)
            return
        a = Attr.infer(value)
        if a.kind is AttrKind.GRAPH:
            node.graph._adopt(a.value, node)  # type: ignore[union-attr]
        node._attrs[key] = a
        self._record("set_attr", node._name, key)

    def set_output_type(self, v: Value, t: TensorType) -> None:
        if v.type != t:
            old = v.type
            v.type = t
            self._record("set_type", v.name, f"{old} -> {t}")

    def replace_all_uses(self, old: Value, new: Value, *, exclude: Sequence[Node] = ()) -> int:
        """Make every user of ``old`` (nodes, in any subgraph, and graph outputs) use ``new``,
        except the nodes in ``exclude`` (e.g. the node that computes ``new`` from ``old``).
        Returns how many uses moved."""
        if old is new:
            return 0
        n = 0
        skip = {id(x) for x in exclude}
        for use in old.uses():
            if id(use.node) in skip:
                continue
            g = use.node.graph
            assert g is not None
            g._check_visible(new, use.node)
            use.node._inputs[use.index] = new
            old._uses.remove(use)
            new._uses.append(use)
            n += 1
        owner = old.owner
        if owner is not None:
            for i, o in enumerate(owner.outputs):
                if o is old:
                    owner.outputs[i] = new
                    n += 1
        if n:
            self._record("replace_uses", old.name, f"-> {new.name}, {n} uses")
        return n

    def erase_node(self, node: Node, *, unsafe: bool = False) -> None:
        """Remove a node. Its outputs must have no uses left (unless ``unsafe``)."""
        if node._graph is not self:
            if node._graph is None:
                raise IRError(f"node {node.describe()} is not in a graph")
            return node._graph.erase_node(node, unsafe=unsafe)
        if not unsafe:
            for v in node._outputs:
                if v is not None and v.has_uses():
                    users = ", ".join(u.node.describe() for u in v.uses()) or "a graph output"
                    raise IRError(f"cannot erase {node.describe()}: output %{v.name} is still used by {users}")
        self._detach(node)
        self._nodes.pop(self._index_of(node))
        for v in node._outputs:
            if v is not None:
                self._undefine(v)
        node._graph = None
        self._node_names_root().discard(node._name)
        self._record("erase_node", node._name, node.qualified_op)

    def _detach(self, node: Node) -> None:
        for i, v in enumerate(node._inputs):
            if v is not None:
                v._uses.remove(Use(node, i))
        for sg in node.subgraphs():
            for inner in sg.walk():
                for i, v in enumerate(inner._inputs):
                    if v is not None and Use(inner, i) in v._uses:
                        v._uses.remove(Use(inner, i))

    def move_before(self, node: Node, anchor: Node) -> None:
        self._nodes.pop(self._index_of(node))
        self._nodes.insert(self._index_of(anchor), node)
        self._record("move", node._name, f"before {anchor._name}")

    def sort(self) -> bool:
        """Put nodes in a topological order (stable: keeps the current order where it can).
        Returns whether the order changed. Raises IRError on a cycle."""
        order = topological_order(self)
        if [id(n) for n in order] == [id(n) for n in self._nodes]:
            return False
        self._nodes = order
        self._record("sort", self.name)
        return True


class _ScopeAnchor:
    """Stands in for a subgraph's parent node while the subgraph is being built, so that
    name lookups reach the enclosing graph."""

    def __init__(self, graph: Graph):
        self.graph = graph


def _node_deps(node: Node, graph: Graph) -> Iterable[Node]:
    """Producers within ``graph`` of the values ``node`` reads, its subgraphs included."""
    for v in node._inputs:
        if v is not None and v._producer is not None and v._producer._graph is graph:
            yield v._producer
    for sg in node.subgraphs():
        for inner in sg.walk():
            for v in inner._inputs:
                if v is None:
                    continue
                p = v._producer
                if p is not None and p._graph is graph:
                    yield p
        for o in sg.outputs:
            p = o._producer
            if p is not None and p._graph is graph:
                yield p


def topological_order(graph: Graph) -> list[Node]:
    """A stable topological order of ``graph``'s nodes; IRError names a node on a cycle."""
    nodes = graph._nodes
    index = {id(n): i for i, n in enumerate(nodes)}
    deps = {id(n): {id(p) for p in _node_deps(n, graph)} for n in nodes}
    users: dict[int, list[int]] = {id(n): [] for n in nodes}
    indeg = {}
    for n in nodes:
        d = deps[id(n)] - {id(n)}
        if id(n) in deps[id(n)]:
            raise IRError(f"node {n.describe()} reads its own output: the graph has a cycle")
        indeg[id(n)] = len(d)
        for p in d:
            users[p].append(id(n))
    import heapq

    ready = [index[id(n)] for n in nodes if indeg[id(n)] == 0]
    heapq.heapify(ready)
    out: list[Node] = []
    while ready:
        i = heapq.heappop(ready)
        n = nodes[i]
        out.append(n)
        for u in users[id(n)]:
            indeg[u] -= 1
            if indeg[u] == 0:
                heapq.heappush(ready, index[u])
    if len(out) != len(nodes):
        stuck = [n for n in nodes if indeg[id(n)] > 0]
        raise IRError(f"the graph has a cycle through node {stuck[0].describe()}")
    return out
