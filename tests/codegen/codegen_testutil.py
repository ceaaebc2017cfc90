"""Helpers for the codegen tests (compiled models are expensive: a TVM build costs seconds)."""

from __future__ import annotations

import numpy as np
import pytest


def prepared(graph):
    """A copy of ``graph`` after the one pipeline a compile runs before lowering
    (`graphopt.pipeline.lowering_pipeline(None)`: everything computable from constants
    folded); `codegen.lower.lower` takes a graph as it is."""
    from graphopt.ir.clone import clone_graph
    from graphopt.pipeline import lowering_pipeline, run_passes

    g = clone_graph(graph)
    run_passes(g, lowering_pipeline(None))
    return g


def lower_prepared(graph, **kw):
    """`codegen.lower.lower` of `prepared` ``graph``."""
    from graphopt.codegen.lower import lower

    return lower(prepared(graph), **kw)


def compile_graph(graph, target: str = "cpu", **kw):
    """Compile ``graph`` as it is (no passes but the lowering pipeline), after checking that
    its lowering is well-formed Relax (TVM's builds accept some ill-formed modules)."""
    from tvm import relax

    from graphopt.compiler import compile_model

    relax.analysis.well_formed(lower_prepared(graph).mod)  # raises
    return compile_model(graph, target, opt_level=None, **kw)


def check_against_oracle(graph, inputs: dict, model=None, tol=None):
    """Compile ``graph`` (unless ``model`` is given), run it and the oracle on ``inputs``."""
    from graphopt.testing import assert_close, run_reference

    expected = run_reference(graph, inputs)
    model = model or compile_graph(graph)
    got = model.run(**inputs)
    if tol is None:
        assert_close(expected, got, [o.name for o in graph.outputs])
    else:
        for e, g in zip(expected, got):
            np.testing.assert_allclose(g, e, rtol=tol.rtol, atol=tol.atol)
    return model
