"""The worklist driver: apply rules over a graph (and its subgraphs) until none matches.

Every node is visited once; after a rewrite only what it can have changed is visited
again: the nodes it created, the users of the values it substituted, the users of the
inputs of nodes it erased (a value with one user fewer may now be contained in a match),
each followed downstream as far as the deepest pattern reaches. A rewrite rescans
nothing else, so a pass costs about one visit per node, not one per node per round.

The pass context is used by what it does (``explain``, ``explain_failed``,
``explain_applied``, ``allow``, ``limit_reached``, ``refused``): the pass manager's
`PassContext` is one, and this package does not import the pass manager.
"""

from __future__ import annotations

from collections import defaultdict, deque
from typing import Sequence

from ..ir import Graph, Node, Value, shapes_compatible
from ..ir.printer import format_node
from .replace import erase_dead, finish_renames, replace_values, why_not_replace
from .rule import Rewriter, Rule, replacement_pairs

# A guard against rule sets that undo each other forever (a bug in the rules).
MAX_APPLICATIONS = 100_000


class RuleError(RuntimeError):
    """A rule built a replacement it cannot use (a bug in the rule: its condition should
    have excluded the site), or rules that rewrite forever."""


def _all_graphs(graph: Graph):
    yield graph
    for n in graph.nodes:
        for sg in n.subgraphs():
            yield from _all_graphs(sg)


class _Worklist:
    def __init__(self, depth: int):
        self.depth = max(depth, 1)
        self.queue: deque[Node] = deque()
        self.queued: set[int] = set()

    def push(self, node: Node) -> None:
        if id(node) not in self.queued and node.graph is not None:
            self.queued.add(id(node))
            self.queue.append(node)

    def push_downstream(self, values: Sequence[Value]) -> None:
        """The users of ``values``, and theirs, as far as a pattern reaches."""
        frontier = list(values)
        for _ in range(self.depth):
            nxt = []
            for v in frontier:
                for u in v.uses():
                    self.push(u.node)
                    nxt.extend(o for o in u.node.outputs if o is not None)
            frontier = nxt

    def pop(self) -> Node:
        node = self.queue.popleft()
        self.queued.discard(id(node))
        return node


def apply_rules(graph: Graph, ctx, rules: Sequence[Rule]) -> bool:
    """Apply ``rules`` over ``graph`` (and its subgraphs) until none matches. Returns
    whether anything changed."""
    by_anchor: dict[tuple[str, str], list[Rule]] = defaultdict(list)
    for r in rules:
        by_anchor[r.anchor].append(r)
        if ctx.explain is not None:
            ctx.explain.describe(r.name, r.algebra)
    work = _Worklist(max((r.pattern.depth() for r in rules), default=1))
    for g in list(_all_graphs(graph)):
        for node in g.nodes:
            work.push(node)
    changed, applications = False, 0
    while work.queue:
        node = work.pop()
        if node.graph is None:
            continue  # erased by an earlier rewrite
        for rule in by_anchor.get((node.domain, node.op_type), ()):
            if _try_rule(graph, ctx, rule, node, work):
                changed = True
                applications += 1
                if applications > MAX_APPLICATIONS:
                    raise RuleError(f"rules applied more than {MAX_APPLICATIONS} times: some rules undo each other "
                                    f"(last: {rule.name} at {_site(node)})")
                break
    return changed


def _site(node: Node) -> str:
    return f"{node.name} ({node.qualified_op})"


def _check(pairs, node: Node):
    """None when every (old, new) pair is a valid substitution; else why not."""
    for old, new in pairs:
        if new is None:
            if old.has_uses():
                return f"output %{old.name} is used and has no replacement"
            continue
        why = why_not_replace(old, new)
        if why is None and old.type.shape is not None and new.type.shape is not None:
            if not shapes_compatible(old.type.shape, new.type.shape):
                why = f"the replacement's type {new.type} differs from {old.type}"
        if why:
            return why
    covered = {id(old) for old, _ in pairs}
    for o in node.outputs:
        if o is not None and id(o) not in covered and o.has_uses():
            return f"output %{o.name} is used and has no replacement"
    return None


def _try_rule(graph: Graph, ctx, rule: Rule, node: Node, work: _Worklist) -> bool:
    m = rule.match(node)
    if not m:
        ctx.explain_failed(rule.name, _site(node), m.reason, near=m.near)
        return False
    if ctx.limit_reached:
        ctx.refused += 1
        ctx.explain_failed(rule.name, _site(node), "the bisect limit was reached", near=True)
        return False
    g = node.graph
    before = graph.journal_size
    rw = Rewriter(g, rule, m)
    pairs = replacement_pairs(node, rule.replace(rw, m))
    built = graph.journal_size != before
    why = "the replacement declined" if pairs is None else _check(pairs, node)
    if why:
        if built:
            raise RuleError(f"rule {rule.name} at {_site(node)}: {why}")
        ctx.explain_failed(rule.name, _site(node), why, near=True)
        return False
    matched, created = list(m.nodes), list(rw.created)
    news = [new for _, new in pairs]
    ctx.allow(rule.name, matched,
              lambda: "\n".join(format_node(n) for n in matched)
              + "".join("\n  + " + format_node(n) for n in created)
              + "\n  => " + ", ".join("_" if v is None else f"%{v.name}" for v in news), created=created)
    subs = [(old, new) for old, new in pairs if new is not None]
    erased_inputs = [v for n in matched for v in n.inputs if v is not None]
    pending = replace_values(graph, subs)
    erase_dead(graph, matched)
    finish_renames(graph, pending)
    ctx.explain_applied(rule.name, _site(node))
    for n in created:
        work.push(n)
    work.push_downstream(created_outputs(created) + [new for _, new in subs]
                         + [v for v in erased_inputs if v.owner is not None or v.producer is not None])
    return True


def created_outputs(nodes: Sequence[Node]) -> list[Value]:
    return [o for n in nodes for o in n.outputs if o is not None]
