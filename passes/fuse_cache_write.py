"""Fuse the exported form of a static KV cache's update into ``graphopt.CacheWrite``.

    Transpose(ScatterND(Transpose(c, p), Unsqueeze(pos, -1), u), p^-1)
        = CacheWrite(c, pos, Transpose(u, p^-1)) {axis = p[0]}

torch.onnx exports ``cache.index_copy(axis, pos, new)`` (transformers' StaticCache, and the
step graphopt.llm traces) as the cache transposed to put ``axis`` first, a ScatterND of the
new rows along it, and the transpose back: two copies of the whole cache per layer and
step around a write of T rows. CacheWrite is one scatter; with ``inplace=1`` (what
graphopt.llm asks for) a cache that is a graph input read by nothing else is written where
it lies, and the step costs T rows. Exact. In -O2 (not in place there: a compiled model
writes into no input unless its caller asked).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Optional

from graphopt.ir import Graph
from graphopt.ir.function import DOMAIN
from graphopt.ops.defs.cache import CACHE_WRITE, writable
from graphopt.pipeline.base import Pass, PassContext, register_pass
from graphopt.pipeline.errors import PassOptionError
from graphopt.rewrite import Bind, Const, Op, RuleSet, Var, apply_rules

PATTERN = Op("Transpose",
             Op("ScatterND", Op("Transpose", Var("cache"), perm=Bind("p")),
                Op("Unsqueeze", Var("pos"), Const("axes", pred=lambda a: None if a.reshape(-1).tolist() in ([-1], [1])
                                                   else f"axes {a.reshape(-1).tolist()} are not the last")),
                Var("new"), reduction="none"),
             perm=Bind("q"), name="out")


def _check(m) -> Optional[str]:
    r = m.cache.type.rank
    if r is None:
        return f"the rank of %{m.cache.name} is unknown"
    if m.p is None or m.q is None or sorted(m.p) != list(range(r)):
        return "the transposes have no explicit permutation"
    if [m.p.index(i) for i in range(r)] != list(m.q):
        return f"perm {list(m.q)} does not undo {list(m.p)}"
    if m.pos.type.rank != 1:
        return f"the positions %{m.pos.name} are not a vector"
    return None


@functools.lru_cache(maxsize=None)
def rule_set(inplace: bool) -> RuleSet:
    rules = RuleSet("fuse-cache-write")

    def replace(rw, m):
        rw.graph.root.opset_imports.setdefault(DOMAIN, 1)
        new = rw.op("Transpose", [m.new], {"perm": list(m.q)}).output
        in_place = int(inplace and writable(m.cache))
        return rw.op(CACHE_WRITE, [m.cache, m.pos, new], {"axis": int(m.p[0]), "inplace": in_place},
                     domain=DOMAIN, name=m.out.name).output

    rules.add("index-copy", "Transpose(ScatterND(Transpose(c, p), Unsqueeze(pos, -1), u), p^-1) -> "
              "CacheWrite(c, pos, Transpose(u, p^-1)) {axis=p[0]}", PATTERN, replace, where=_check,
              shared=True)  # (the positions' Unsqueeze is one node for every layer)
    return rules


@register_pass
@dataclass
class FuseCacheWrite(Pass):
    name = "fuse-cache-write"
    summary = "fuse the exported index_copy of a static KV cache into graphopt.CacheWrite (exact; inplace=1: " \
              "write a graph input's buffer)"

    inplace: int = 0

    def __post_init__(self):
        if self.inplace not in (0, 1):
            raise PassOptionError(f"fuse-cache-write: inplace={self.inplace} must be 0 or 1")

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        return apply_rules(graph, ctx, rule_set(bool(self.inplace)).rules)
