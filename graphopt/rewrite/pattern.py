"""Patterns over the IR's DAG.

`Var` matches any value, `Const` a constant, `Op` a value produced by a node of that op
(inputs matched positionally; attributes as keywords: a `Bind` binds the attribute's value,
schema default applied; a literal must be equal; a callable returns None or a reason).
`Opt` is an optional input (absent, or matching its inner pattern); `Maybe` an optional
node (the node, or the value it would have taken as one of its inputs).

A name bound twice must bind the same thing, which is how a pattern is a DAG rather than a
tree: ``Var("x")`` under three MatMuls matches one value feeding all three, and an `Op`
named twice is one node. Ops whose schema says they are commutative match both operand
orders: rules never spell out the mirrored form. Matching is a search: every way a
pattern fits is yielded in turn (natural operand order first), so a rule's condition can
reject one and take the next.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional

import numpy as np

from ..ir import Node, Value
from ..ops import attr_value


class State:
    """Bindings and matched nodes of a partial match; copied on write, so each branch of
    the search keeps its own."""

    __slots__ = ("bindings", "nodes", "root")

    def __init__(self, bindings: dict, nodes: tuple, root: Node):
        self.bindings, self.nodes, self.root = bindings, nodes, root

    def bind(self, name: Optional[str], v) -> tuple[Optional["State"], Optional[str]]:
        """(the state with ``name`` bound to ``v``, None), or (None, why it conflicts)."""
        if name is None:
            return self, None
        if name in self.bindings:
            prev = self.bindings[name]
            if prev is v:
                return self, None
            return None, f"{name} is bound to {_label(prev)} and to {_label(v)}"
        b = dict(self.bindings)
        b[name] = v
        return State(b, self.nodes, self.root), None

    def with_node(self, node: Node) -> "State":
        if any(n is node for n in self.nodes):
            return self
        return State(self.bindings, self.nodes + (node,), self.root)


def _label(x) -> str:
    if isinstance(x, Value):
        return f"%{x.name}"
    if isinstance(x, Node):
        return repr(x.name)
    return repr(x)


class Why:
    """Why a search failed: the reason of the failure that got deepest into the pattern
    (most nodes matched: with optional nodes, the shallow "not produced by X" of the
    alternative without the node says less than how the full form failed), the first one
    among equals (the natural operand order's, as a user reads it)."""

    __slots__ = ("reason", "depth")

    def __init__(self):
        self.reason: Optional[str] = None
        self.depth = -1

    def note(self, reason: str, depth: int = 0) -> None:
        if depth > self.depth:
            self.reason, self.depth = reason, depth


class Pattern:
    def matches(self, v: Optional[Value], st: State, where: str, why: Why) -> Iterator[State]:
        """Every state in which ``v`` matches this pattern; when there is none, ``why``
        says why (the first failure)."""
        raise NotImplementedError

    def depth(self) -> int:
        """How many nodes deep the pattern reaches (the driver revisits that far downstream
        of a rewrite)."""
        return 0


@dataclass
class Var(Pattern):
    """Any value (``pred(value)`` returns None or a reason)."""

    name: Optional[str] = None
    pred: Optional[Callable[[Value], Optional[str]]] = None

    def matches(self, v, st, where, why):
        if v is None:
            why.note(f"{where} is missing", len(st.nodes))
            return
        yield from _test_and_bind(self.name, self.pred, v, v, st, where, why)


@dataclass
class Const(Pattern):
    """A constant value (an initializer whose data is known); ``pred(array)`` returns None
    or a reason."""

    name: Optional[str] = None
    pred: Optional[Callable[[np.ndarray], Optional[str]]] = None

    def matches(self, v, st, where, why):
        if v is None:
            why.note(f"{where} is missing", len(st.nodes))
            return
        if not v.is_constant:
            why.note(f"{where} %{v.name} is not a constant", len(st.nodes))
            return
        if v.const.is_elided:
            why.note(f"{where} %{v.name} is an elided constant", len(st.nodes))
            return
        yield from _test_and_bind(self.name, self.pred, v.const.numpy() if self.pred else None, v, st, where, why)


def _test_and_bind(name, pred, subject, v: Value, st: State, where: str, why: Why) -> Iterator[State]:
    """The state with ``v`` bound to ``name`` when ``pred(subject)`` holds (or there is no
    ``pred``); else nothing, and the reason noted."""
    if pred is not None:
        r = pred(subject)
        if r:
            why.note(f"{where} %{v.name}: {r}", len(st.nodes))
            return
    st2, r = st.bind(name, v)
    if r:
        why.note(r, len(st.nodes))
        return
    yield st2


@dataclass
class Opt(Pattern):
    """An optional input: absent, or matching ``inner``."""

    inner: Pattern = field(default_factory=Var)

    def matches(self, v, st, where, why):
        if v is None:
            yield st
            return
        yield from self.inner.matches(v, st, where, why)

    def depth(self) -> int:
        return self.inner.depth()


@dataclass
class Maybe(Pattern):
    """An optional node: the value is produced by ``inner`` (an `Op`), or the node is absent
    and the value itself matches ``inner``'s input ``through``. With the node absent, the
    names bound only inside ``inner`` are left unbound (``m.get(name)`` is None), e.g.
    ``Maybe(Op("Mul", Var("s"), Const("scale")), through=0)`` takes ``s * scale`` or ``s``."""

    inner: "Op"
    through: int = 0

    def matches(self, v, st, where, why):
        yield from self.inner.matches(v, st, where, why)
        yield from self.inner.inputs[self.through].matches(v, st, where, why)

    def depth(self) -> int:
        return self.inner.depth()


class OneOf(Pattern):
    """Any one of ``alternatives`` (tried in order; every way each fits is yielded): one
    rule for the spellings of one algebra, as exporters differ. At a rule's root, every
    alternative must be an `Op` of one op type (the rule's anchor)."""

    def __init__(self, *alternatives: Pattern):
        if len(alternatives) < 2:
            raise ValueError("OneOf takes two or more alternatives")
        self.alternatives = alternatives
        ops = {(a.domain, a.op_type) for a in alternatives if isinstance(a, Op)}
        uniform = len(ops) == 1 and all(isinstance(a, Op) for a in alternatives)
        self.domain, self.op_type = next(iter(ops)) if uniform else (None, None)

    def __repr__(self) -> str:
        return f"OneOf({', '.join(map(repr, self.alternatives))})"

    def depth(self) -> int:
        return max(a.depth() for a in self.alternatives)

    def matches(self, v, st, where, why):
        inner = Why()
        found = False
        for a in self.alternatives:
            for s in a.matches(v, st, where, inner):
                found = True
                yield s
        if not found:
            why.note(f"none of {len(self.alternatives)} forms fits; the closest: {inner.reason}", inner.depth)

    def match_node(self, node: Node, st: State, why: Why) -> Iterator[State]:
        if self.op_type is None:
            raise TypeError("a OneOf at a rule's root needs Op alternatives of one op type")
        inner = Why()
        found = False
        for a in self.alternatives:
            for s in a.match_node(node, st, inner):
                found = True
                yield s
        if not found:
            why.note(f"none of {len(self.alternatives)} forms fits; the closest: {inner.reason}", inner.depth)


@dataclass(frozen=True)
class Bind:
    """In an `Op`'s attributes: bind the attribute's value (schema default applied)."""

    name: str


class Op(Pattern):
    """A value produced by a node of ``op_type`` whose inputs match ``inputs`` (extra
    trailing inputs must be absent unless ``rest=True``) and whose attributes match.
    ``name`` binds the node."""

    def __init__(self, op_type: str, *inputs: Pattern, domain: str = "", name: Optional[str] = None,
                 rest: bool = False, **attrs: Any):
        self.op_type = op_type
        self.domain = domain
        self.inputs = inputs
        self.name = name
        self.rest = rest
        self.attrs = attrs

    def __repr__(self) -> str:
        return f"Op({self.op_type!r}, {len(self.inputs)} inputs{', ' + repr(self.name) if self.name else ''})"

    def depth(self) -> int:
        return 1 + max((p.depth() for p in self.inputs), default=0)

    def matches(self, v, st, where, why):
        if v is None:
            why.note(f"{where} is missing", len(st.nodes))
            return
        p = v.producer
        if p is None:
            kind = "a constant" if v.is_constant else "a graph input"
            why.note(f"{where} %{v.name} is {kind}, not produced by {self.op_type}", len(st.nodes))
            return
        if p.op_type != self.op_type or p.domain != self.domain:
            why.note(f"{where} %{v.name} is produced by {p.qualified_op} {p.name!r}, not {self.op_type}", len(st.nodes))
            return
        if p.graph is not st.root.graph:
            why.note(f"{where} %{v.name} is produced in another graph", len(st.nodes))
            return
        yield from self.match_node(p, st, why)

    def match_node(self, node: Node, st: State, why: Why) -> Iterator[State]:
        if node.op_type != self.op_type or node.domain != self.domain:
            why.note(f"node is {node.qualified_op}, not {self.op_type}", len(st.nodes))
            return
        ins = list(node.inputs)
        if not self.rest:
            while len(ins) > len(self.inputs) and ins[-1] is None:
                ins.pop()
            if len(ins) > len(self.inputs):
                why.note(f"{node.op_type} {node.name!r} has {len(ins)} inputs, the pattern takes {len(self.inputs)}", len(st.nodes))
                return
        st, r = st.with_node(node).bind(self.name, node)
        if r:
            why.note(r, len(st.nodes))
            return
        orders = [tuple(range(len(self.inputs)))]
        if len(self.inputs) == 2 and len(ins) == 2 and _commutative(node):
            orders.append((1, 0))
        reasons = []
        for order in orders:
            w = Why()
            found = False
            for s in self._inputs(node, ins, order, 0, st, w):
                r = self._attrs(node, s)
                if isinstance(r, str):
                    w.note(r, len(s.nodes))
                    continue
                found = True
                yield r
            if not found:
                reasons.append((w.reason, w.depth))
        if len(reasons) == len(orders):
            depth = max(d for _, d in reasons)
            if len(reasons) == 2 and reasons[0][0] != reasons[1][0]:
                why.note(f"{reasons[0][0]} (with the operands swapped: {reasons[1][0]})", depth)
            elif reasons:
                why.note(reasons[0][0], depth)

    def _inputs(self, node: Node, ins: list, order: tuple, k: int, st: State, why: Why) -> Iterator[State]:
        if k == len(self.inputs):
            yield st
            return
        idx = order[k]
        v = ins[idx] if idx < len(ins) else None
        for s in self.inputs[k].matches(v, st, f"input {idx} of {node.op_type} {node.name!r}", why):
            yield from self._inputs(node, ins, order, k + 1, s, why)

    def _attrs(self, node: Node, st: State):
        """The state with the attribute bindings added, or the reason they do not match."""
        for key, want in self.attrs.items():
            val = attr_value(node, key)
            if isinstance(want, Bind):
                st, r = st.bind(want.name, val)
                if r:
                    return r
            elif callable(want):
                r = want(val)
                if r:
                    return f"attribute {key} of {node.op_type} {node.name!r}: {r}"
            elif val != want:
                return f"attribute {key} of {node.op_type} {node.name!r} is {val!r}, not {want!r}"
        return st


def _commutative(node: Node) -> bool:
    from ..ops import get_schema

    s = get_schema(node.op_type, node.domain)
    return s is not None and s.traits.commutative
