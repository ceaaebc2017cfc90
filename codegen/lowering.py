"""Temporary: the old import path of the lowering (`codegen.lower`), for the modules that
still use it: codegen/compiler.py and codegen/fallback.py (``lower`` with folding,
``fold_for_lowering``, ``Lowered.folded``), graphopt/testing/fuzz/fixtures.py and
tests/codegen/test_fallback.py (``_TABLE``), scripts/update_readme.py (``lowered_ops``).
It goes once they import `codegen.lower` and run `graphopt.pipeline.lowering_pipeline`
before lowering."""

from __future__ import annotations

from dataclasses import dataclass

from . import lower as lower_pkg
from .lower import LoweringError, LoweringRefusedError, lowered_ops, unsupported_nodes
from .lower.registry import TABLE as _TABLE

__all__ = ["LoweringError", "LoweringRefusedError", "Lowered", "fold_for_lowering", "lower", "lowered_ops",
           "unsupported_nodes", "_TABLE"]


@dataclass
class Lowered(lower_pkg.Lowered):
    folded: int = 0                  # nodes folded at compile time


def fold_for_lowering(graph):
    """A copy of ``graph`` (constant payloads shared) with `lowering_pipeline(None)` run
    on it; and how many nodes went away."""
    from ..ir.clone import clone_graph
    from ..pipeline import lowering_pipeline, run_passes

    g = clone_graph(graph)
    before = sum(1 for _ in g.walk())
    run_passes(g, lowering_pipeline(None))
    return g, before - sum(1 for _ in g.walk())


def lower(graph, *, fold: bool = True, **kw) -> Lowered:
    """`codegen.lower.lower`, after folding a copy of the graph unless ``fold`` is False."""
    folded = 0
    if fold:
        graph, folded = fold_for_lowering(graph)
    return Lowered(**vars(lower_pkg.lower(graph, **kw)), folded=folded)
