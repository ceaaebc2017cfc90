"""fuse-layer-norm: the decomposed layer normalization (with or without its scale and bias)
becomes LayerNormalization; numbers stay the oracle's; other shapes of the same ops and
shared intermediates stay as they are."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graphopt
from graphopt.ir import DType, Graph, TensorData, TensorType
from graphopt.ops import build

from passes_testutil import N_EXAMPLES, run_checked

RNG = np.random.default_rng(0)


def _c(g: Graph, a, dt=np.float32):
    return g.add_constant(g.fresh_name("c"), TensorData.from_numpy(np.asarray(a, dt)))


def ln_graph(square: int = 0, recip: bool = False, swap: bool = False, scale: bool = True, bias: bool = True,
             axes=(-1,), axes2=None, share: bool = False) -> Graph:
    g = Graph("g", {"": 21})
    x = g.add_input("x", TensorType(DType.FLOAT32, ("N", 3, 8)))

    def op(name, a, b):
        return build(g, name, [b, a] if swap and name in ("Mul", "Add") else [a, b]).output

    mean = build(g, "ReduceMean", [x, _c(g, list(axes), np.int64)], {"keepdims": 1}).output
    d = build(g, "Sub", [x, mean]).output
    sq = build(g, "Pow", [d, _c(g, 2.0)]).output if square == 0 else op("Mul", d, d)
    var = build(g, "ReduceMean", [sq, _c(g, list(axes2 or axes), np.int64)], {"keepdims": 1}).output
    root = build(g, "Sqrt", [op("Add", var, _c(g, 1e-5))]).output
    y = op("Mul", d, build(g, "Reciprocal", [root]).output) if recip else build(g, "Div", [d, root]).output
    normalized = (3, 8)[-len(axes):] if len(axes) < 2 else (3, 8)
    if scale:
        y = op("Mul", y, _c(g, RNG.uniform(0.5, 1.5, normalized)))
    if bias:
        y = op("Add", y, _c(g, RNG.standard_normal(normalized)))
    g.outputs = [y, var] if share else [y]
    return g


def _inputs():
    return {"x": np.random.default_rng(1).standard_normal((2, 3, 8)).astype(np.float32)}


@settings(max_examples=min(N_EXAMPLES, 60), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 1), st.booleans(), st.booleans(), st.booleans(), st.booleans(),
       st.sampled_from([(-1,), (1, 2)]))
def test_every_spelling_becomes_one_layer_norm(square, recip, swap, scale, bias, axes):
    g = ln_graph(square, recip, swap, scale, bias, axes)
    run_checked(g, ["fuse-layer-norm", "dce"], _inputs())
    assert [n.op_type for n in g.nodes] == ["LayerNormalization"]
    ln = g.nodes[0]
    assert ln.attrs["axis"].value == -len(axes) and ln.attrs["epsilon"].value == pytest.approx(1e-5)
    assert len(ln.inputs) == (3 if bias else 2)
    assert ln.provenance.rule.startswith("fuse-layer-norm.")


@pytest.mark.parametrize("case,reason", [
    ("different-axes", "the two means reduce different axes ([2] and [1, 2])"),
    ("variance-used-outside", "div (Div): %reducemean_2 is also a graph output"),
])
def test_unchanged_with_the_reason(case, reason):
    g = ln_graph(axes2=(1, 2), scale=False, bias=False) if case == "different-axes" else \
        ln_graph(share=True, scale=False, bias=False)
    before = graphopt.print_ir(g)
    run = run_checked(g, ["fuse-layer-norm"], _inputs())
    assert not any(r.changed for r in run.records) and graphopt.print_ir(g) == before
    out = io.StringIO()
    graphopt.run_passes(g, ["fuse-layer-norm"], explain=out)
    assert reason in out.getvalue(), out.getvalue()


def test_a_bias_over_the_batch_stays_an_add():
    g = ln_graph(scale=False, bias=False)
    c = _c(g, RNG.standard_normal((2, 3, 8)))  # varies over the batch: not LayerNormalization's bias
    g.outputs = [build(g, "Add", [g.outputs[0], c]).output]
    run_checked(g, ["fuse-layer-norm", "dce"], _inputs())
    assert [n.op_type for n in g.nodes] == ["LayerNormalization", "Add"]
