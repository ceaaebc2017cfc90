"""Rules: a pattern, a one-line algebra, a condition and a replacement, grouped in rule
sets; and the Rewriter a replacement builds its nodes through (each new node records the
rule and the matched nodes as its provenance)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np

from ..ir import Graph, Node, Provenance, TensorData, Value
from .match import Condition, Match, fail
from .pattern import Op, State, Why

# A replacement returns the new values of the root's outputs (a value, or a sequence with
# None for an output that must be unused), or a mapping {old value: new value} over the
# outputs of any matched nodes (multi-output rewrites: attention with its KV-cache outputs);
# None declines.
Replacement = Any


@dataclass
class Rule:
    """A (pattern, replacement) pair with a condition. ``name`` is qualified by its rule set
    (``simplify.identity``); ``algebra`` is one line: what it rewrites into what.

    Containment: the matched nodes other than the root must be used only inside the match
    (else the rewrite would leave them computed anyway, so fusing them saves nothing and
    may duplicate work). ``keep`` names bound nodes or values exempt from it; ``shared=True``
    exempts all (rules that only bypass a node, like ``Neg(Neg(x)) -> x``, are right even when
    the inner node has other users: it stays for them)."""

    name: str
    algebra: str
    pattern: Op
    replace: Replacement
    where: Optional[Condition] = None
    keep: Sequence[str] = ()
    shared: bool = False

    @property
    def anchor(self) -> tuple[str, str]:
        return (self.pattern.domain, self.pattern.op_type)

    def match(self, node: Node) -> Match:
        """The first way the pattern fits at ``node`` that passes containment and the
        condition; else a failed Match with the first reason."""
        why, refused = Why(), None
        for st in self.pattern.match_node(node, State({}, (), node), why):
            m = Match(True, bindings=st.bindings, nodes=list(st.nodes), root=node)
            r = self.contained(m)
            if r is None and self.where is not None:
                r = self.where(m)
            if not r:
                return m
            refused = refused or r
        # where the ops fitted (a near miss), what refused them says more than an operand
        # order that did not fit
        if refused:
            return fail(refused, near=True)
        return fail(why.reason or "the pattern does not match")

    def contained(self, m: Match) -> Optional[str]:
        """None when every matched node but the root (and those ``keep`` names) is used
        only by matched nodes; else which value escapes, and to where."""
        if self.shared:
            return None
        inside = {id(n) for n in m.nodes}
        kept = {id(m.bindings[k]) for k in self.keep if m.bindings.get(k) is not None}
        for n in m.nodes[1:]:
            if id(n) in kept:
                continue
            for o in n.outputs:
                if o is None or id(o) in kept:
                    continue
                if o.is_graph_output():
                    return f"%{o.name} is also a graph output"
                for u in o.uses():
                    if id(u.node) not in inside:
                        return f"%{o.name} is also used by node {u.node.name!r}"
        return None


@dataclass
class RuleSet:
    """A named group of rules (``simplify``'s rules are grouped this way)."""

    name: str
    rules: list[Rule] = field(default_factory=list)

    def rule(self, name: str, algebra: str, pattern: Op, *, where: Optional[Condition] = None,
             keep: Sequence[str] = (), shared: bool = False):
        """Decorator: the decorated function is the replacement."""

        def deco(fn: Replacement) -> Replacement:
            self.add(name, algebra, pattern, fn, where=where, keep=keep, shared=shared)
            return fn

        return deco

    def add(self, name: str, algebra: str, pattern: Op, replace: Replacement, *,
            where: Optional[Condition] = None, keep: Sequence[str] = (), shared: bool = False) -> Rule:
        if getattr(pattern, "op_type", None) is None:
            raise TypeError(f"rule {self.name}.{name}: the root pattern must be an Op (or a OneOf of Ops of one "
                            "op type), the node the rule is anchored at")
        r = Rule(f"{self.name}.{name}", algebra, pattern, replace, where, tuple(keep), shared)
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
           *, num_outputs: Optional[int] = None, name: str = "", domain: str = "") -> Node:
        from ..ops import build

        n = build(self.graph, op_type, inputs, attrs, num_outputs=num_outputs, name=name or op_type.lower(),
                  domain=domain, before=self.match.root, provenance=self.provenance)
        self.created.append(n)
        return n

    def const(self, array: np.ndarray, hint: str = "c") -> Value:
        return self.graph.add_constant(self.graph.fresh_name(hint), TensorData.from_numpy(np.asarray(array)),
                                       provenance=self.provenance)


def replacement_pairs(node: Node, result: Union[Value, Sequence, Mapping, None]) -> Optional[list]:
    """(old, new-or-None) pairs from what a replacement returned; None when it declined."""
    if result is None:
        return None
    if isinstance(result, Mapping):
        return list(result.items())
    news = [result] if isinstance(result, Value) else list(result)
    news += [None] * (len(node.outputs) - len(news))
    return [(old, new) for old, new in zip(node.outputs, news) if old is not None]
