"""fuse-swiglu: x * sigmoid(x) becomes graphopt.SiLU, SiLU(g) * u graphopt.SwiGLU; exact, so
the oracle's numbers do not move; a sigmoid of another value stays as it is."""

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


def projected_mlp(gated: bool, swap_silu: bool, swap_gate: bool, rows: tuple, hidden: int, split: bool) -> Graph:
    """Llama's MLP without the down projection: gate and up from x by two MatMuls (or one
    MatMul and a Split, as fused-QKV-style exports do), then SiLU(gate) (* up)."""
    rng = np.random.default_rng(hidden)
    g = Graph("g", {"": 21})
    x = g.add_input("x", TensorType(DType.FLOAT32, rows + (8,)))

    def w(name, n):
        return g.add_constant(name, TensorData.from_numpy(rng.standard_normal((8, n)).astype(np.float32)))

    if split:
        both = build(g, "MatMul", [x, w("w_gu", 2 * hidden)], name="gu").output
        sizes = g.add_constant("sizes", TensorData.from_numpy(np.array([hidden, hidden], np.int64)))
        sp = build(g, "Split", [both, sizes], {"axis": -1}, name="split", num_outputs=2)
        gate, up = sp.outputs
    else:
        gate = build(g, "MatMul", [x, w("w_g", hidden)], name="g_proj").output
        up = build(g, "MatMul", [x, w("w_u", hidden)], name="u_proj").output
    s_ = build(g, "Sigmoid", [gate], name="sigmoid").output
    silu = build(g, "Mul", [s_, gate] if swap_silu else [gate, s_], name="silu").output
    out = build(g, "Mul", [up, silu] if swap_gate else [silu, up], name="gated").output if gated else silu
    g.outputs = [out] + ([] if gated else [up])
    return g


@settings(max_examples=min(N_EXAMPLES, 40), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.booleans(), st.booleans(), st.booleans(), st.sampled_from([(3,), (1, 5), (2, 3)]), st.integers(1, 24),
       st.booleans(), st.integers(0, 2 ** 16))
def test_every_variant_fuses_and_keeps_the_numbers(gated, swap_silu, swap_gate, rows, hidden, split, seed):
    g = projected_mlp(gated, swap_silu, swap_gate, rows, hidden, split)
    feeds = {"x": np.random.default_rng(seed).standard_normal(rows + (8,)).astype(np.float32) * 3}
    run_checked(g, ["fuse-swiglu", "dce"], feeds)
    fused = [n for n in g.nodes if n.domain == "graphopt"]
    assert [n.qualified_op for n in fused] == ["graphopt.SwiGLU" if gated else "graphopt.SiLU"]
    assert not any(n.op_type == "Sigmoid" for n in g.nodes)
