"""How an op's FLOPs are counted, for the rules each op family registers next to its ops
(`set_traits(..., flops=...)`); `graphopt.bench.flops` sums them over a graph.

A rule takes a `FlopSite` (the node and a way to read static shapes) and returns the
FLOPs of one run of the node, or None when a shape it needs is unknown. The conventions:
two FLOPs per multiply-accumulate (plus one per output element for a bias), one per window
element for pooling, one per input element for reductions, an op's per-element cost for
everything elementwise, nothing for ops that only move or describe data. Ops without a rule
count one per output element."""

from __future__ import annotations

import math
from typing import Callable, Mapping, Optional


class FlopSite:
    """One node, with its shapes made static from ``bindings`` (symbol -> size)."""

    def __init__(self, node, bindings: Mapping[str, int]):
        self.node = node
        self.bindings = bindings

    def shape(self, v) -> Optional[tuple]:
        if v is None or v.type.shape is None:
            return None
        out = []
        for d in v.type.shape:
            if isinstance(d, str):
                if d not in self.bindings:
                    return None
                d = self.bindings[d]
            out.append(int(d))
        return tuple(out)

    def input(self, i: int) -> Optional[tuple]:
        ins = self.node.inputs
        return self.shape(ins[i]) if i < len(ins) else None

    def has_input(self, i: int) -> bool:
        return i < len(self.node.inputs) and self.node.inputs[i] is not None

    def output(self, i: int = 0) -> Optional[tuple]:
        outs = [o for o in self.node.outputs if o is not None]
        return self.shape(outs[i]) if i < len(outs) else None

    def out_elements(self) -> Optional[int]:
        shapes = [self.shape(o) for o in self.node.outputs if o is not None]
        if not shapes or shapes[0] is None:
            return None
        return max(numel(s) for s in shapes if s is not None)


FlopRule = Callable[[FlopSite], Optional[int]]


def numel(shape) -> int:
    return math.prod(shape) if shape is not None else 0


def none(site: FlopSite) -> Optional[int]:
    """Moves or describes data: nothing computed."""
    return 0


def per_element(cost: int) -> FlopRule:
    """``cost`` FLOPs per output element."""

    def rule(site: FlopSite) -> Optional[int]:
        n = site.out_elements()
        return None if n is None else cost * n

    rule.__name__ = f"per_element_{cost}"
    return rule


def input_elements(site: FlopSite) -> Optional[int]:
    """One per input element (reductions)."""
    if site.output() is None:
        return None
    x = site.input(0)
    return numel(x) if x is not None else numel(site.output())


def bias(site: FlopSite, index: int) -> int:
    """One per output element when input ``index`` (a bias) is given."""
    return numel(site.output()) if site.has_input(index) else 0
