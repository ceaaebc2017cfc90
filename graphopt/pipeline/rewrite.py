"""Rewrite rules: small (pattern, replacement) pairs with conditions.

A pattern describes the nodes around a root node::

    Op("Transpose", Op("Transpose", Var("x"), perm=Bind("p")), perm=Bind("q"))

`Var` matches any value, `Const` a constant, `Op` a value produced by a node of that op
(its inputs matched positionally, attributes given as keywords: a `Bind` binds the
attribute's value, schema default applied; a literal must be equal). Matching returns a
`Match`; a failed match is falsy and carries the reason (for ``--explain``)::

    m = rule.match(node)
    if not m: print(m.reason)   # "input 0 is produced by Relu 'relu_1', not Transpose"

A `Rule` adds a name, its algebra (one line), a condition (``where``: returns None when
it holds, else the reason it does not) and a replacement (``replace(rw, m)``, building new
nodes through the `Rewriter` so each records the rule and its source nodes as provenance).
`apply_rules` runs rule sets over a graph to a fixpoint, asking the pass context before
every application (bisect limit) and logging misses (explain).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence, Union

import numpy as np

from ..ir import Graph, Node, Provenance, TensorData, Value
from ..ir.printer import format_node
from .base import PassContext, all_graphs


# ---------------------------------------------------------------------------- match results
class Match:
    """The outcome of matching: truthy with bindings and matched nodes, or falsy with a reason."""

    __slots__ = ("ok", "reason", "bindings", "nodes", "root")

    def __init__(self, ok: bool, reason: str = "", bindings: Optional[dict] = None,
                 nodes: Optional[list[Node]] = None, root: Optional[Node] = None):
        self.ok = ok
        self.reason = reason
        self.bindings = bindings if bindings is not None else {}
        self.nodes = nodes if nodes is not None else []
        self.root = root

    def __bool__(self) -> bool:
        return self.ok

    def __getitem__(self, key: str):
        return self.bindings[key]

    def __getattr__(self, key: str):
        try:
            return self.bindings[key]
        except KeyError:
            raise AttributeError(key) from None

    def array(self, key: str) -> np.ndarray:
        """The data of a bound constant value."""
        v = self.bindings[key]
        return v.const.numpy()

    def __repr__(self) -> str:
        return f"<Match {sorted(self.bindings)}>" if self.ok else f"<no match: {self.reason}>"


def fail(reason: str) -> Match:
    return Match(False, reason)


def all_of(*conds: "Condition") -> "Condition":
    """A condition that holds when every one of ``conds`` does; else the first reason."""

    def where(m):
        for c in conds:
            r = c(m)
            if r:
                return r
        return None

    return where


# ---------------------------------------------------------------------------- patterns
class Pattern:
    def match_value(self, v: Optional[Value], m: Match, where: str) -> Optional[str]:
        """Bind into ``m``; None on success, else the reason of the failure."""
        raise NotImplementedError


def _bind(m: Match, name: Optional[str], v) -> Optional[str]:
    if name is None:
        return None
    if name in m.bindings and m.bindings[name] is not v:
        prev = m.bindings[name]
        pv = getattr(prev, "name", prev)
        nv = getattr(v, "name", v)
        return f"{name} is bound to {pv} and to {nv}"
    m.bindings[name] = v
    return None


@dataclass
class Var(Pattern):
    """Any value (``pred(value)`` returns None or a reason)."""

    name: Optional[str] = None
    pred: Optional[Callable[[Value], Optional[str]]] = None

    def match_value(self, v, m, where):
        if v is None:
            return f"{where} is missing"
        if self.pred is not None:
            r = self.pred(v)
            if r:
                return f"{where} %{v.name}: {r}"
        return _bind(m, self.name, v)


@dataclass
class Const(Pattern):
    """A constant value (an initializer whose data is known)."""

    name: Optional[str] = None
    pred: Optional[Callable[[np.ndarray], Optional[str]]] = None

    def match_value(self, v, m, where):
        if v is None:
            return f"{where} is missing"
        if not v.is_constant:
            return f"{where} %{v.name} is not a constant"
        if v.const.is_elided:
            return f"{where} %{v.name} is an elided constant"
        if self.pred is not None:
            r = self.pred(v.const.numpy())
            if r:
                return f"{where} %{v.name}: {r}"
        return _bind(m, self.name, v)


@dataclass
class Opt(Pattern):
    """An optional input: absent, or matching ``inner``."""

    inner: Pattern = field(default_factory=Var)

    def match_value(self, v, m, where):
        if v is None:
            return None
        return self.inner.match_value(v, m, where)


@dataclass(frozen=True)
class Bind:
    """In an `Op`'s attributes: bind the attribute's value (schema default applied)."""

    name: str


class Op(Pattern):
    """A value produced by a node of ``op_type`` whose inputs match ``inputs`` (extra
    trailing inputs must be absent unless ``rest=True``) and whose attributes match."""

    def __init__(self, op_type: str, *inputs: Pattern, domain: str = "", name: Optional[str] = None,
                 rest: bool = False, **attrs: Any):
        self.op_type = op_type
        self.domain = domain
        self.inputs = inputs
        self.name = name
        self.rest = rest
        self.attrs = attrs

    def match_value(self, v, m, where):
        if v is None:
            return f"{where} is missing"
        p = v.producer
        if p is None:
            kind = "a constant" if v.is_constant else "a graph input"
            return f"{where} %{v.name} is {kind}, not produced by {self.op_type}"
        if p.op_type != self.op_type or p.domain != self.domain:
            return f"{where} %{v.name} is produced by {p.qualified_op} {p.name!r}, not {self.op_type}"
        if p.graph is not m.root.graph:
            return f"{where} %{v.name} is produced in another graph"
        return self.match_node(p, m)

    def match_node(self, node: Node, m: Match) -> Optional[str]:
        if node.op_type != self.op_type or node.domain != self.domain:
            return f"node is {node.qualified_op}, not {self.op_type}"
        ins = list(node.inputs)
        if not self.rest:
            while len(ins) > len(self.inputs) and ins[-1] is None:
                ins.pop()
            if len(ins) > len(self.inputs):
                return f"{node.op_type} {node.name!r} has {len(ins)} inputs, the pattern takes {len(self.inputs)}"
        m.nodes.append(node)
        r = _bind(m, self.name, node)
        if r:
            return r
        for i, pat in enumerate(self.inputs):
            v = ins[i] if i < len(ins) else None
            r = pat.match_value(v, m, f"input {i} of {node.op_type} {node.name!r}")
            if r:
                return r
        for key, want in self.attrs.items():
            val = attr_value(node, key)
            if isinstance(want, Bind):
                r = _bind(m, want.name, val)
                if r:
                    return r
            elif callable(want):
                r = want(val)
                if r:
                    return f"attribute {key} of {node.op_type} {node.name!r}: {r}"
            elif val != want:
                return f"attribute {key} of {node.op_type} {node.name!r} is {val!r}, not {want!r}"
        return None


def attr_value(node: Node, key: str):
    """The attribute's value, else the schema's default (None when it has none)."""
    a = node.attrs.get(key)
    if a is not None:
        return a.value
    from ..ops import REQUIRED, get_schema

    s = get_schema(node.op_type, node.domain)
    if s is None or key not in s.attrs:
        return None
    d = s.attrs[key].default
    return None if d is REQUIRED else d


# ---------------------------------------------------------------------------- rules
Condition = Callable[[Match], Optional[str]]
Replacement = Callable[["Rewriter", Match], Union[Value, Sequence[Optional[Value]], None]]


@dataclass
class Rule:
    """A (pattern, replacement) pair with a condition. ``name`` is qualified by its rule
    set (``simplify.identity``); ``algebra`` is one line: what it rewrites into what."""

    name: str
    algebra: str
    pattern: Op
    replace: Replacement
    where: Optional[Condition] = None

    @property
    def anchor(self) -> tuple[str, str]:
        return (self.pattern.domain, self.pattern.op_type)

    def match(self, node: Node) -> Match:
        m = Match(True, root=node)
        r = self.pattern.match_node(node, m)
        if r:
            return fail(r)
        if self.where is not None:
            r = self.where(m)
            if r:
                return fail(r)
        return m


@dataclass
class RuleSet:
    """A named group of rules (``simplify``'s rules are grouped this way)."""

    name: str
    rules: list[Rule] = field(default_factory=list)

    def rule(self, name: str, algebra: str, pattern: Op, *, where: Optional[Condition] = None):
        """Decorator: the decorated function is the replacement."""

        def deco(fn: Replacement) -> Replacement:
            self.rules.append(Rule(f"{self.name}.{name}", algebra, pattern, fn, where))
            return fn

        return deco

    def add(self, name: str, algebra: str, pattern: Op, replace: Replacement, *,
            where: Optional[Condition] = None) -> Rule:
        r = Rule(f"{self.name}.{name}", algebra, pattern, replace, where)
        self.rules.append(r)
        return r


class Rewriter:
    """Builds a rule's replacement: new nodes go before the root and record provenance."""

    def __init__(self, graph: Graph, rule: Rule, m: Match):
        self.graph = graph
        self.rule = rule
        self.match = m
        self.created: list[Node] = []

    @property
    def provenance(self) -> Provenance:
        return Provenance(self.rule.name, tuple(n.name for n in self.match.nodes))

    def op(self, op_type: str, inputs: Sequence[Optional[Value]], attrs: Optional[Mapping[str, Any]] = None,
           *, num_outputs: Optional[int] = None, name: str = "") -> Node:
        from ..ops import build

        n = build(self.graph, op_type, inputs, attrs, num_outputs=num_outputs, name=name or op_type.lower(),
                  before=self.match.root, provenance=self.provenance)
        self.created.append(n)
        return n

    def const(self, array: np.ndarray, hint: str = "c") -> Value:
        return self.graph.add_constant(self.graph.fresh_name(hint), TensorData.from_numpy(np.asarray(array)),
                                       provenance=self.provenance)


# ---------------------------------------------------------------------------- replacing values
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


def replace_node(graph: Graph, node: Node, new_values: Sequence[Optional[Value]]) -> list[tuple[Value, str]]:
    """Replace each output of ``node`` by the matching new value (None: the output must be
    unused), erase the node, and return the (value, name) renames still to do so that graph
    outputs keep their names (done at once where the name is already free)."""
    g = node.graph
    pending: list[tuple[Value, str]] = []
    for old, new in zip(node.outputs, new_values):
        if old is None or new is None:
            continue
        was_output = old.is_graph_output()
        graph.replace_all_uses(old, new)
        if was_output:
            pending.append((new, old.name))
    g.erase_node(node)
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
    pool = {id(n) for n in todo}
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
    del pool
    return erased


# ---------------------------------------------------------------------------- explain
class ExplainLog:
    """Per rule: where it applied, and why it did not at candidate sites."""

    def __init__(self):
        self.algebra: dict[str, str] = {}
        self.hits: dict[str, list[str]] = defaultdict(list)
        self.misses: dict[str, dict[str, str]] = defaultdict(dict)

    def describe(self, rule: str, algebra: str) -> None:
        self.algebra.setdefault(rule, algebra)

    def applied(self, rule: str, site: str) -> None:
        self.hits[rule].append(site)
        self.misses[rule].pop(site, None)

    def failed(self, rule: str, site: str, reason: str) -> None:
        self.misses[rule][site] = reason  # the latest reason at a site wins

    def format(self, max_sites: int = 20) -> str:
        rules = sorted(set(self.algebra) | set(self.hits) | set(self.misses))
        lines = []
        for r in rules:
            if not self.hits.get(r) and not self.misses.get(r):
                continue
            head = f"rule {r}"
            if r in self.algebra:
                head += f": {self.algebra[r]}"
            lines.append(head)
            hits = self.hits.get(r, [])
            hit_set = set(hits)
            misses = {s: why for s, why in self.misses.get(r, {}).items() if s not in hit_set}
            # the unusual reasons first: "not constant" is what most sites say
            misses = dict(sorted(misses.items(), key=lambda kv: "is not constant" in kv[1]))
            if hits:
                shown = ", ".join(hits[:max_sites]) + (f", ... ({len(hits) - max_sites} more)" if len(hits) > max_sites else "")
                lines.append(f"  applied {len(hits)} time(s): {shown}")
            else:
                lines.append("  applied 0 times")
            if misses:
                lines.append(f"  not applied at {len(misses)} candidate site(s):")
                for i, (s, why) in enumerate(misses.items()):
                    if i == max_sites:
                        lines.append(f"    ... ({len(misses) - max_sites} more)")
                        break
                    lines.append(f"    {s}: {why}")
        return "\n".join(lines) + ("\n" if lines else "")


# ---------------------------------------------------------------------------- the driver
def apply_rules(graph: Graph, ctx: PassContext, rules: Sequence[Rule], max_rounds: int = 50) -> bool:
    """Apply ``rules`` over ``graph`` (and its subgraphs) until none matches. Returns
    whether anything changed."""
    by_anchor: dict[tuple[str, str], list[Rule]] = defaultdict(list)
    for r in rules:
        by_anchor[r.anchor].append(r)
        if ctx.explain is not None:
            ctx.explain.describe(r.name, r.algebra)
    changed = False
    for _ in range(max_rounds):
        round_changed = False
        for g in list(all_graphs(graph)):
            for node in g.nodes:
                if node.graph is None:
                    continue  # erased by an earlier rewrite this round
                for rule in by_anchor.get((node.domain, node.op_type), ()):
                    if _try_rule(graph, ctx, rule, node):
                        round_changed = True
                        break
        changed |= round_changed
        if not round_changed or ctx.limit_reached:
            break
    return changed


def _site(node: Node) -> str:
    return f"{node.name} ({node.qualified_op})"


class RuleError(RuntimeError):
    """A rule built a replacement it cannot use (a bug in the rule: its condition should
    have excluded the site)."""


def _try_rule(graph: Graph, ctx: PassContext, rule: Rule, node: Node) -> bool:
    m = rule.match(node)
    if not m:
        ctx.explain_failed(rule.name, _site(node), m.reason)
        return False
    if ctx.limit_reached:
        ctx.refused += 1
        ctx.explain_failed(rule.name, _site(node), "the bisect limit was reached")
        return False
    g = node.graph
    assert g is not None
    before = graph.journal_size
    rw = Rewriter(g, rule, m)
    result = rule.replace(rw, m)
    built = graph.journal_size != before
    news = [] if result is None else [result] if isinstance(result, Value) else list(result)
    outs = node.outputs
    news += [None] * (len(outs) - len(news))
    why = "the replacement declined" if result is None else None
    for old, new in zip(outs, news):
        if why or old is None:
            continue
        if new is None:
            if old.has_uses():
                why = f"output %{old.name} is used and has no replacement"
            continue
        why = why_not_replace(old, new)
        if why is None and old.type.shape is not None and new.type.shape is not None:
            from ..ir import shapes_compatible

            if not shapes_compatible(old.type.shape, new.type.shape):
                why = f"the replacement's type {new.type} differs from {old.type}"
    if why:
        if built:
            raise RuleError(f"rule {rule.name} at {_site(node)}: {why}")
        ctx.explain_failed(rule.name, _site(node), why)
        return False
    detail_nodes = list(m.nodes)
    created = list(rw.created)
    ctx.allow(rule.name, detail_nodes,
              lambda: "\n".join(format_node(n) for n in detail_nodes)
              + "".join("\n  + " + format_node(n) for n in created)
              + "\n  => " + ", ".join("_" if v is None else f"%{v.name}" for v in news))
    replace_node(graph, node, news)
    erase_dead(graph, [n for n in m.nodes[1:]])
    ctx.explain_applied(rule.name, _site(node))
    return True
