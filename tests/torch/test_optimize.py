"""graphopt.optimize(nn.Module) and torch.compile(backend="graphopt"), against torch eager."""

import pytest
import torch
from torch.utils import _pytree as pytree

import graphopt
from graphopt.frontend.torch_module import TorchInputError
from graphopt.testing import TOLERANCES
from graphopt.ir import DType

from torch_models import MLP, GPT2DecodeStep, Nested, SmallCNN, bert_small, gpt2_past, gpt2_small

TOL = TOLERANCES[DType.FLOAT32]


def assert_like_eager(got, want, rtol=TOL.rtol, atol=TOL.atol):
    g, gs = pytree.tree_flatten(got)
    w, ws = pytree.tree_flatten(want)
    assert gs == ws, f"output structure {gs} differs from eager's {ws}"
    for a, b in zip(g, w):
        assert isinstance(a, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape
        torch.testing.assert_close(a, b.detach(), rtol=rtol, atol=atol)


def eager(m, *args):
    with torch.no_grad():
        return m(*args)


@pytest.mark.parametrize("build, shape", [(MLP, (4, 16)), (SmallCNN, (2, 3, 16, 16))], ids=["mlp", "cnn"])
def test_small_modules(build, shape):
    m = build().eval()
    x = torch.randn(*shape)
    c = graphopt.optimize(m, (x,))
    assert_like_eager(c(x), eager(m, x))
    x2 = torch.randn(*shape)
    assert_like_eager(c(x2), eager(m, x2))


def test_nested_outputs_keep_their_structure():
    m = Nested().eval()
    x = torch.randn(2, 4)
    out = graphopt.optimize(m, x)(x)
    assert isinstance(out, dict) and isinstance(out["extra"], tuple)
    assert_like_eager(out, eager(m, x))


def test_inputs_the_compiled_code_cannot_take_name_the_input():
    m = MLP().eval()
    c = graphopt.optimize(m, (torch.randn(4, 16),))
    with pytest.raises(graphopt.GraphoptError, match="'x'.*shape"):
        c(torch.randn(5, 16))
    with pytest.raises(graphopt.GraphoptError, match="'x'.*dtype"):
        c(torch.randn(4, 16, dtype=torch.float64))
    with pytest.raises(TorchInputError):
        c(torch.randn(4, 16), torch.randn(4, 16))


def test_dynamic_batch_dim_at_two_sizes():
    m = MLP().eval()
    c = graphopt.optimize(m, (torch.randn(4, 16),), dynamic_shapes=({0: torch.export.Dim("batch")},))
    assert str(c.graph.inputs[0].type) == "f32[batch, 16]"
    for n in (1, 7):
        x = torch.randn(n, 16)
        assert_like_eager(c(x), eager(m, x))


def test_bert_small():
    m = bert_small()
    ids = torch.randint(0, 1000, (1, 16))
    c = graphopt.optimize(m, (ids,))
    got, want = c(ids), eager(m, ids)
    assert type(got).__name__ == type(want).__name__  # a transformers ModelOutput, like eager's
    assert_like_eager(got, want, atol=1e-4)


def test_gpt2_small_prefill_and_decode_step():
    m = gpt2_small()
    ids = torch.randint(0, 1000, (1, 16))
    c = graphopt.optimize(m, (ids,))
    assert_like_eager(c(ids), eager(m, ids), atol=1e-4)
    step = GPT2DecodeStep(m).eval()
    keys, values = gpt2_past(m, 16)
    nxt = torch.randint(0, 1000, (1, 1))
    cs = graphopt.optimize(step, (nxt, keys, values))
    assert_like_eager(cs(nxt, keys, values), eager(step, nxt, keys, values), atol=1e-4)


class WithGraphBreak(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(8, 8)
        self.b = torch.nn.Linear(8, 4)

    def forward(self, x):
        y = torch.relu(self.a(x))
        torch._dynamo.graph_break()
        return self.b(y) * 2


def test_torch_compile_backend_with_a_graph_break(monkeypatch):
    import graphopt.frontend.torch_module as tm

    calls = []
    real = tm.optimize_module

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(tm, "optimize_module", spy)
    torch._dynamo.reset()
    m = WithGraphBreak().eval()
    cm = torch.compile(m, backend="graphopt", dynamic=False, options={"opt_level": "O1"})
    x = torch.randn(3, 8)
    with torch.no_grad():
        assert_like_eager(cm(x), eager(m, x))
    assert len(calls) == 2  # one compiled region on each side of the break
    assert all(c.get("opt_level") == "O1" for c in calls)  # options pass through


@pytest.mark.slow
def test_base_configs_bert_and_gpt2():
    from transformers import BertConfig, BertModel, GPT2Config, GPT2LMHeadModel

    bert = BertModel(BertConfig()).eval()
    ids = torch.randint(0, 30000, (1, 128))
    assert_like_eager(graphopt.optimize(bert, (ids,))(ids), eager(bert, ids), atol=1e-3)
    gpt2 = GPT2LMHeadModel(GPT2Config(use_cache=False, bos_token_id=0, eos_token_id=0)).eval()
    ids = torch.randint(0, 50000, (1, 128))
    assert_like_eager(graphopt.optimize(gpt2, (ids,))(ids), eager(gpt2, ids), atol=1e-3)


def test_cpu_inputs_and_outputs_are_not_copied(monkeypatch):
    m = MLP().eval()
    x = torch.randn(4, 16)
    c = graphopt.optimize(m, (x,))
    calls = []
    monkeypatch.setattr(c.compiled, "run", lambda *a, **k: calls.append(a))  # the copying path must not run
    out = c(x)
    assert calls == [] and isinstance(out, torch.Tensor)
    assert_like_eager(out, eager(m, x))
    x2 = torch.randn(4, 16)
    out2 = c(x2)
    assert_like_eager(out, eager(m, x))  # an earlier output is not overwritten by a later call
    assert_like_eager(out2, eager(m, x2))


class PassThrough(torch.nn.Module):
    def forward(self, x):
        return x, x + 1


def test_an_output_that_is_an_input_does_not_alias_it():
    x = torch.randn(3)
    c = graphopt.optimize(PassThrough(), (x,))
    same, plus = c(x)
    assert torch.equal(same, x) and same.data_ptr() != x.data_ptr()
