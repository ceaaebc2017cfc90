"""fuse-rms-norm: the decomposed RMS normalization, as exporters write it, becomes
graphopt.RMSNorm (with the weight after it folded into its scale); numbers stay the
oracle's; other reductions and shared intermediates stay as they are."""

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


def _c(g: Graph, a, dt=np.float32):
    return g.add_constant(g.fresh_name("c"), TensorData.from_numpy(np.asarray(a, dt)))


def rms_graph(square: int = 0, recip: int = 0, swap: bool = False, weight: bool = True, axes=(-1,),
              eps: float = 1e-6, share: bool = False, shape=(2, 3, 8)) -> Graph:
    """x * rsqrt(mean(x^2) + eps) * w, spelled as ``square`` (Pow / Mul), ``recip``
    (Reciprocal / Div(1, .) / x divided by the sqrt), operands ``swap``ped."""
    g = Graph("g", {"": 21})
    x = g.add_input("x", TensorType(DType.FLOAT32, ("N",) + tuple(shape[1:])))

    def op(name, a, b):
        return build(g, name, [b, a] if swap and name in ("Mul", "Add") else [a, b]).output

    sq = build(g, "Pow", [x, _c(g, 2.0)]).output if square == 0 else op("Mul", x, x)
    mean = build(g, "ReduceMean", [sq, _c(g, list(axes), np.int64)], {"keepdims": 1}).output
    root = build(g, "Sqrt", [op("Add", mean, _c(g, eps))]).output
    if recip == 0:
        y = op("Mul", x, build(g, "Reciprocal", [root]).output)
    elif recip == 1:
        y = op("Mul", x, build(g, "Div", [_c(g, 1.0), root]).output)
    else:
        y = build(g, "Div", [x, root]).output
    if weight:
        y = op("Mul", y, _c(g, np.random.default_rng(0).uniform(0.5, 1.5, shape[-1])))
    g.outputs = [y, mean] if share else [y]
    return g


def _inputs(shape=(2, 3, 8)):
    return {"x": np.random.default_rng(1).standard_normal(shape).astype(np.float32)}


@settings(max_examples=min(N_EXAMPLES, 60), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 1), st.integers(0, 2), st.booleans(), st.booleans(), st.sampled_from([(-1,), (1, 2), (2, 1)]))
def test_every_spelling_becomes_one_rms_norm(square, recip, swap, weight, axes):
    g = rms_graph(square, recip, swap, weight, axes)
    run_checked(g, ["fuse-rms-norm", "dce"], _inputs())
    assert [n.qualified_op for n in g.nodes] == ["graphopt.RMSNorm"]
    norm = g.nodes[0]
    assert norm.attrs["axis"].value == -len(axes) and norm.attrs["epsilon"].value == pytest.approx(1e-6)
    assert norm.provenance.rule.startswith("fuse-rms-norm.")
    text = graphopt.print_ir(g)
    assert graphopt.print_ir(graphopt.parse_ir(text)) == text


@pytest.mark.parametrize("case,reason", [
    ("leading-axes", "ReduceMean 'reducemean' reduces axes [0, 1], not the last ones of a rank-3 input"),
    ("eps-negative", "is -1e-06, not positive"),
    ("mean-used-outside", "%reducemean is also a graph output"),
])
def test_unchanged_with_the_reason(case, reason):
    g = {"leading-axes": lambda: rms_graph(axes=(0, 1), weight=False),
         "eps-negative": lambda: rms_graph(eps=-1e-6, weight=False),
         "mean-used-outside": lambda: rms_graph(share=True, weight=False)}[case]()
    before = graphopt.print_ir(g)
    run = run_checked(g, ["fuse-rms-norm"], _inputs())
    assert not any(r.changed for r in run.records) and graphopt.print_ir(g) == before
    out = io.StringIO()
    graphopt.run_passes(g, ["fuse-rms-norm"], explain=out)
    assert reason in out.getvalue(), out.getvalue()


def test_a_weight_over_more_than_the_normalized_dims_stays_a_mul():
    g = rms_graph(weight=False)
    w = _c(g, np.random.default_rng(2).uniform(0.5, 1.5, (3, 8)))  # varies over dim 1 too: still fits
    g.outputs = [build(g, "Mul", [g.outputs[0], w]).output]
    run_checked(g, ["fuse-rms-norm", "dce"], _inputs())
    assert [n.qualified_op for n in g.nodes] == ["graphopt.RMSNorm", "Mul"]


def test_llama_norms_fuse_at_O2_and_match_torch():
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, vocab_size=1000, max_position_embeddings=64)
    m = LlamaForCausalLM(cfg).eval()
    m.config.use_cache = False
    with torch.no_grad():  # weights other than ones, so the weight Mul is there to fold
        for mod in m.modules():
            if type(mod).__name__ == "LlamaRMSNorm":
                mod.weight.uniform_(0.5, 1.5)
    ids = torch.randint(0, 1000, (1, 8))
    g = graphopt.run_passes(graphopt.trace(m, (ids,)), "O2", check_numerics=True)
    norms = [n for n in g.nodes if n.qualified_op == "graphopt.RMSNorm"]
    assert len(norms) == 2 * cfg.num_hidden_layers + 1
    assert not any(n.op_type in ("ReduceMean", "Reciprocal") for n in g.nodes)
    got = graphopt.optimize(g, opt_level=None)(ids.numpy())
    np.testing.assert_allclose(got, m(ids).logits.detach().numpy(), rtol=1e-4, atol=1e-5)
