"""fuse-rotary: rotary position embeddings as torch.onnx writes transformers' apply_rotary_pos_emb
(rotate_half by Slices or a Split, GPT-J's interleaved pairs, a partial rotary width) become
graphopt.RotaryEmbedding; the oracle's numbers do not move (exact); near misses stay, with the
reason; traced Llama (and Phi-3, GPT-J, GPT-NeoX) fuse every q/k site and compile to torch's
numbers."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graphopt
from graphopt.ir import DType, Graph, TensorData, TensorType
from graphopt.ops import build
from graphopt.testing import strategies as gst

from passes_testutil import N_EXAMPLES, run_checked

INT64_MAX = 2**63 - 1


def _ints(g: Graph, vals) -> object:
    return g.add_constant(g.fresh_name("c"), TensorData.from_numpy(np.array(vals, np.int64)))


def _f32(g: Graph, a, dt=np.float32) -> object:
    return g.add_constant(g.fresh_name("t"), TensorData.from_numpy(np.asarray(a, dt)))


def rope_graph(d=16, rdim=0, form="slices", swap_mul=(False, False), swap_add=False, end_max=True, neg_axis=True,
               tables="input", cs_full=False, cs_h=None, h=4, s=8, halves_swapped=False, cut=None, share=None,
               dt=np.float32) -> tuple:
    """x * cos + rot(x) * sin over the last axis of x (1, h, s, d), as torch.onnx writes it;
    ``rdim`` > 0: only the first rdim dims rotate (Slice, rotate, Concat the rest back).
    form: "slices" | "split" (rotate_half) | "pairs" (GPT-J). tables: cos/sin as graph
    inputs, constants, or computed from a position input (Cos/Sin of pos * inv_freq, then
    Unsqueeze; in float32 like HF, then Cast to x's dtype ``dt``). Returns (graph, inputs)."""
    g = Graph("g", {"": 21})
    rng = np.random.default_rng(0)
    w = rdim or d
    xdt = DType.from_numpy(np.dtype(dt))
    x = g.add_input("x", TensorType(xdt, (1, h, s, d)))
    feeds = {"x": rng.standard_normal((1, h, s, d)).astype(dt)}
    ax = -1 if neg_axis else 3
    end = INT64_MAX if end_max else None
    cs_shape = (1, cs_h or (h if cs_full else 1), s, w)
    if tables == "computed":
        pos = g.add_input("pos", TensorType(DType.FLOAT32, (1, s, 1)))
        feeds["pos"] = np.arange(s, dtype=np.float32).reshape(1, s, 1)
        freqs = build(g, "Mul", [pos, _f32(g, 1.0 / 10000 ** (np.arange(0, w, 2) / w))]).output
        emb = build(g, "Concat", [freqs, freqs], {"axis": -1}).output
        cos, sin = (build(g, "Unsqueeze", [build(g, op, [emb]).output, _ints(g, [1])]).output for op in ("Cos", "Sin"))
        if dt != np.float32:
            cos, sin = (build(g, "Cast", [v], {"to": xdt.onnx}).output for v in (cos, sin))
    else:
        ang = rng.uniform(-3, 3, cs_shape)
        arrs = {"cos": np.cos(ang).astype(dt), "sin": np.sin(ang).astype(dt)}
        if tables == "const":
            cos, sin = _f32(g, arrs["cos"], dt), _f32(g, arrs["sin"], dt)
        else:
            cos, sin = (g.add_input(k, TensorType(xdt, cs_shape)) for k in ("cos", "sin"))
            feeds.update(arrs)

    def sl(v, a, b, step=1):
        ins = [v, _ints(g, [a]), _ints(g, [b if b is not None else v.type.shape[-1]]), _ints(g, [ax])]
        return build(g, "Slice", ins + ([_ints(g, [step])] if step != 1 else [])).output

    def mul(a, b, swap):
        return build(g, "Mul", [b, a] if swap else [a, b]).output

    xr = x if not rdim else sl(x, 0, rdim)
    if form == "pairs":
        even, odd = sl(xr, 0, end, 2), sl(xr, 1, end, 2)
        if halves_swapped:
            even, odd = odd, even
        last = _ints(g, [-1] if neg_axis else [4])
        stack = build(g, "Concat", [build(g, "Unsqueeze", [build(g, "Neg", [odd]).output, last]).output,
                                    build(g, "Unsqueeze", [even, last]).output], {"axis": -1 if neg_axis else 4},
                      name="cat").output
        rot = build(g, "Reshape", [stack, _ints(g, [1, h, s, w])]).output
    elif form == "split":
        # end_max=False spells the halves as Split's split input instead of num_outputs
        split = build(g, "Split", [xr], {"axis": ax, "num_outputs": 2}, num_outputs=2) if end_max else \
            build(g, "Split", [xr, _ints(g, [w // 2, w // 2])], {"axis": ax}, num_outputs=2)
        lo, hi = split.outputs
        if halves_swapped:
            lo, hi = hi, lo
        rot = build(g, "Concat", [build(g, "Neg", [hi]).output, lo], {"axis": ax}, name="cat").output
    else:
        c = cut if cut is not None else w // 2
        lo, hi = sl(xr, 0, c), sl(xr, c, end)
        if halves_swapped:
            lo, hi = hi, lo
        rot = build(g, "Concat", [build(g, "Neg", [hi]).output, lo], {"axis": ax}, name="cat").output
    terms = [mul(xr, cos, swap_mul[0]), mul(rot, sin, swap_mul[1])]
    y = build(g, "Add", terms[::-1] if swap_add else terms, name="add").output
    if rdim:
        y = build(g, "Concat", [y, sl(x, rdim, end)], {"axis": ax}, name="join").output
    g.outputs = [y] + ([rot] if share == "rot" else [])
    return g, feeds


def _ops(g: Graph) -> list:
    return [n.qualified_op for n in g.nodes]


@pytest.mark.parametrize("form,rdim", [("slices", 0), ("split", 0), ("pairs", 0), ("slices", 8), ("pairs", 8),
                                       ("split", 4)])
def test_changed(form, rdim):
    g, feeds = rope_graph(form=form, rdim=rdim)
    run = run_checked(g, ["fuse-rotary", "dce"], feeds)
    assert any(r.changed for r in run.records)
    assert _ops(g) == ["graphopt.RotaryEmbedding"]
    rope = g.nodes[0]
    assert rope.attrs.get("interleaved") is None or rope.attrs["interleaved"].value == int(form == "pairs")
    assert (rope.attrs["rotary_embedding_dim"].value if "rotary_embedding_dim" in rope.attrs else 0) == rdim
    assert [v.name for v in rope.inputs] == ["x", "cos", "sin"]
    assert rope.provenance.rule.startswith("fuse-rotary.")
    text = graphopt.print_ir(g)
    assert graphopt.print_ir(graphopt.parse_ir(text)) == text


def test_computed_tables_stay_computed():
    # cos/sin from Cos/Sin of the positions: any value will do, they are the op's inputs
    g, feeds = rope_graph(tables="computed")
    run_checked(g, ["fuse-rotary", "dce"], feeds)
    ops = _ops(g)
    assert ops.count("graphopt.RotaryEmbedding") == 1 and "Cos" in ops and "Neg" not in ops


@pytest.mark.parametrize("kw,reason", [
    ({"halves_swapped": True}, "the Concat's halves are swapped: Neg takes x[..., 0:8] and the second part is "
                               "x[..., 8:16] (rotate_half is cat(-x[..., 8:16], x[..., 0:8]))"),
    ({"form": "split", "halves_swapped": True}, "the Concat's halves are swapped: Neg takes Split 'split''s first output"),
    ({"form": "pairs", "halves_swapped": True}, "the stacked pairs are swapped: Neg takes x[..., 0:16:2]"),
    ({"cut": 7}, "splits at 7, not D/2=8 (D=16)"),
    ({"cs_h": 4, "h": 1}, "input 1 (cos) [1, 4, 8, 16] does not broadcast to X[..., :16] [1, 1, 8, 16] without "
                          "widening it"),
    ({"share": "rot"}, "%cat is also a graph output"),
])
def test_unchanged_with_the_reason(kw, reason):
    g, feeds = rope_graph(**kw)
    before = graphopt.print_ir(g)
    run = run_checked(g, ["fuse-rotary"], feeds)
    assert not any(r.changed for r in run.records) and graphopt.print_ir(g) == before
    out = io.StringIO()
    graphopt.run_passes(g, ["fuse-rotary"], explain=out)
    assert reason in out.getvalue(), out.getvalue()


def test_an_odd_head_dim_is_not_rotate_half():
    g, feeds = rope_graph(d=15, cut=7)
    run = run_checked(g, ["fuse-rotary"], feeds)
    assert not any(r.changed for r in run.records)
    out = io.StringIO()
    graphopt.run_passes(g, ["fuse-rotary"], explain=out)
    assert "the head dim 15 of %x is odd" in out.getvalue(), out.getvalue()


@settings(max_examples=min(N_EXAMPLES, 80), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["slices", "split", "pairs"]), st.sampled_from([8, 16, 32]), st.sampled_from([0, 2, 4, 6]),
       st.tuples(st.booleans(), st.booleans()), st.booleans(), st.booleans(), st.booleans(),
       st.sampled_from(["input", "const", "computed"]), st.booleans(), st.sampled_from([np.float32, np.float16]))
def test_every_variant_fuses_and_keeps_the_oracles_numbers(form, d, rdim, swap_mul, swap_add, end_max, neg_axis,
                                                          tables, cs_full, dt):
    g, feeds = rope_graph(d=d, rdim=rdim, form=form, swap_mul=swap_mul, swap_add=swap_add, end_max=end_max,
                          neg_axis=neg_axis, tables=tables, cs_full=cs_full and tables != "computed", dt=dt)
    run_checked(g, ["fuse-rotary", "dce"], feeds)
    ropes = [n for n in g.nodes if n.qualified_op == "graphopt.RotaryEmbedding"]
    assert len(ropes) == 1 and not any(n.op_type in ("Neg", "Slice", "Split") for n in g.nodes), graphopt.print_ir(g)
    if rdim:
        assert ropes[0].attrs["rotary_embedding_dim"].value == rdim


@settings(max_examples=min(N_EXAMPLES, 60), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(gst.graph_and_inputs(max_nodes=12))
def test_random_graphs_keep_their_numbers(case):
    g, inputs = case
    run_checked(g, ["fuse-rotary"], inputs)


def _llama(layers=2, position_ids=False):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=layers, num_attention_heads=4,
                      num_key_value_heads=2, vocab_size=1000, max_position_embeddings=64)
    m = LlamaForCausalLM(cfg).eval()
    m.config.use_cache = False
    ids = torch.randint(0, 1000, (1, 8))
    if not position_ids:
        return m, (ids,), lambda: m(ids).logits

    class WithPositions(torch.nn.Module):  # cos/sin computed in the graph from position_ids
        def __init__(self):
            super().__init__()
            self.m = m

        def forward(self, ids, pos):
            return self.m(input_ids=ids, position_ids=pos).logits

    w = WithPositions().eval()
    pos = torch.arange(8)[None]
    return w, (ids, pos), lambda: w(ids, pos)


@pytest.mark.parametrize("position_ids", [False, True])
def test_llama_rotary_sites_fuse_and_match_torch(position_ids):
    m, args, eager = _llama(position_ids=position_ids)
    g = graphopt.run_passes(graphopt.trace(m, args), "O2")
    graphopt.run_passes(g, ["fuse-rotary", "dce"], check_numerics=True, verify_each=True)
    ropes = [n for n in g.nodes if n.qualified_op == "graphopt.RotaryEmbedding"]
    assert len(ropes) == 2 * 2  # q and k in each of 2 layers
    assert not any(n.op_type == "Neg" for n in g.nodes)
    compiled = graphopt.optimize(g, opt_level=None)
    got = compiled(*[a.numpy() for a in args])
    np.testing.assert_allclose(got, eager().detach().numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("model,interleaved,rdim", [("phi3", 0, 8), ("gptj", 1, 8), ("neox", 0, 4)])
def test_partial_and_interleaved_models_fuse(model, interleaved, rdim):
    import torch

    torch.manual_seed(0)
    if model == "phi3":
        from transformers import Phi3Config, Phi3ForCausalLM
        m = Phi3ForCausalLM(Phi3Config(hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=4,
                                       num_key_value_heads=2, vocab_size=1000, max_position_embeddings=64,
                                       partial_rotary_factor=0.5, pad_token_id=0))
    elif model == "gptj":
        from transformers import GPTJConfig, GPTJForCausalLM
        m = GPTJForCausalLM(GPTJConfig(n_embd=64, n_layer=1, n_head=4, rotary_dim=8, vocab_size=1000, n_positions=64,
                                       bos_token_id=0, eos_token_id=0))
    else:
        from transformers import GPTNeoXConfig, GPTNeoXForCausalLM
        m = GPTNeoXForCausalLM(GPTNeoXConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                                             num_attention_heads=4, vocab_size=1000, max_position_embeddings=64,
                                             rotary_pct=0.25))
    m = m.eval()
    m.config.use_cache = False
    ids = torch.randint(0, 1000, (1, 8))
    g = graphopt.run_passes(graphopt.trace(m, (ids,)), "O1")
    graphopt.run_passes(g, ["fuse-rotary", "dce"], check_numerics=True, verify_each=True)
    ropes = [n for n in g.nodes if n.qualified_op == "graphopt.RotaryEmbedding"]
    assert len(ropes) == 2 and not any(n.op_type == "Neg" for n in g.nodes)
    for r in ropes:
        assert r.attrs["rotary_embedding_dim"].value == rdim
        assert (r.attrs["interleaved"].value if "interleaved" in r.attrs else 0) == interleaved
    got = graphopt.optimize(g, opt_level=None)(ids.numpy())
    np.testing.assert_allclose(got, m(ids).logits.detach().numpy(), rtol=1e-4, atol=1e-5)
