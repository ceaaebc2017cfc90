"""fuse-swiglu: x * sigmoid(x) becomes graphopt.SiLU, SiLU(g) * u graphopt.SwiGLU; exact, so
the oracle's numbers do not move; a sigmoid of another value stays as it is."""

from __future__ import annotations

import io

import numpy as np
import pytest

import graphopt
from graphopt.ir import DType, Graph, TensorType
from graphopt.ops import build

from passes_testutil import run_checked


def mlp_graph(gated: bool = True, swap: bool = False, other: bool = False) -> Graph:
    g = Graph("g", {"": 21})
    gate = g.add_input("gate", TensorType(DType.FLOAT32, ("N", 16)))
    up = g.add_input("up", TensorType(DType.FLOAT32, ("N", 16)))
    s = build(g, "Sigmoid", [up if other else gate], name="sigmoid").output
    silu = build(g, "Mul", [s, gate] if swap else [gate, s], name="silu").output
    g.outputs = [build(g, "Mul", [up, silu] if swap else [silu, up], name="gated").output] if gated else [silu]
    return g


def _inputs():
    rng = np.random.default_rng(0)
    return {k: rng.standard_normal((3, 16)).astype(np.float32) for k in ("gate", "up")}


@pytest.mark.parametrize("gated,swap,ops", [(True, False, ["graphopt.SwiGLU"]), (True, True, ["graphopt.SwiGLU"]),
                                            (False, False, ["graphopt.SiLU"]), (False, True, ["graphopt.SiLU"])])
def test_changed(gated, swap, ops):
    g = mlp_graph(gated, swap)
    run_checked(g, ["fuse-swiglu", "dce"], _inputs())
    assert [n.qualified_op for n in g.nodes] == ops
    assert g.nodes[0].provenance.rule.startswith("fuse-swiglu.")
    text = graphopt.print_ir(g)
    assert graphopt.print_ir(graphopt.parse_ir(text)) == text


def test_sigmoid_of_another_value_is_not_silu():
    g = mlp_graph(gated=False, other=True)
    before = graphopt.print_ir(g)
    run = run_checked(g, ["fuse-swiglu"], _inputs())
    assert not any(r.changed for r in run.records) and graphopt.print_ir(g) == before
    out = io.StringIO()
    graphopt.run_passes(g, ["fuse-swiglu"], explain=out)
    assert "x is bound to %gate and to %up" in out.getvalue(), out.getvalue()


@pytest.mark.parametrize("gated", [True, False])
def test_compiles_in_place_and_matches_the_oracle(gated):
    from graphopt.testing import assert_close, run_reference

    g = mlp_graph(gated)
    graphopt.run_passes(g, ["fuse-swiglu", "dce"])
    feeds = _inputs()
    compiled = graphopt.optimize(g, opt_level=None)
    assert_close(run_reference(g, feeds), compiled.run(**feeds))
    assert compiled.report.kernels == 1  # one elementwise kernel, as Sigmoid and Mul were
