"""graphopt.trace: torch.export -> torch.onnx -> graphopt IR; numbers checked against
torch eager through the oracle (onnxruntime, optimizations off)."""

import numpy as np
import pytest
import torch

import graphopt
from graphopt.frontend.torch_trace import TraceError, trace_module
from graphopt.testing import run_reference

from torch_models import MLP, Nested, SmallCNN, bert_small, gpt2_small


def eager(model, *args):
    with torch.no_grad():
        return model.eval()(*args)


def test_mlp_numbers_and_parameter_names():
    m = MLP()
    x = torch.randn(4, 16)
    g = graphopt.trace(m, (x,))
    graphopt.verify(g)
    names = {c.name for c in g.constants}
    assert {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"} <= names
    out = run_reference(g, [x.numpy()])[0]
    np.testing.assert_allclose(out, eager(m, x).numpy(), rtol=1e-4, atol=1e-5)


def test_cnn_traces_in_eval_mode_and_restores_training_mode():
    m = SmallCNN().train()
    x = torch.randn(2, 3, 16, 16)
    g = graphopt.trace(m, x)
    assert m.training  # the user's module is left as it was
    out = run_reference(g, [x.numpy()])[0]
    np.testing.assert_allclose(out, eager(m, x).numpy(), rtol=1e-4, atol=1e-5)


def test_dynamic_dims_keep_the_users_names():
    m = MLP()
    batch = torch.export.Dim("batch")
    t = trace_module(m, (torch.randn(4, 16),), dynamic_shapes=({0: batch},))
    assert str(t.graph.inputs[0].type) == "f32[batch, 16]"
    assert str(t.graph.outputs[0].type) == "f32[batch, 8]"
    for n in (3, 7):
        x = torch.randn(n, 16)
        np.testing.assert_allclose(run_reference(t.graph, [x.numpy()])[0], eager(m, x).numpy(), rtol=1e-4,
                                   atol=1e-5)


def test_nested_output_structure_is_recorded():
    t = trace_module(Nested(), (torch.randn(2, 4),))
    assert len(t.graph.outputs) == 3
    flat = [torch.zeros(1)] * 3
    rebuilt = torch.utils._pytree.tree_unflatten(flat, t.out_spec)
    assert set(rebuilt) == {"logits", "extra"} and len(rebuilt["extra"]) == 2


def test_untraceable_module_names_the_line_and_suggests_the_backend():
    class Bad(torch.nn.Module):
        def forward(self, x):
            if x.sum() > 0:  # data-dependent control flow
                return x + 1
            return x - 1

    with pytest.raises(TraceError) as e:
        graphopt.trace(Bad(), torch.randn(3))
    msg = str(e.value)
    assert "torch.export cannot trace Bad" in msg
    assert "test_trace.py" in msg and "if x.sum() > 0" in msg
    assert 'backend="graphopt"' in msg


@pytest.mark.parametrize("build", [bert_small, gpt2_small], ids=["bert", "gpt2"])
def test_transformers_trace_with_symbolic_sequence(build):
    m = build()
    seq = torch.export.Dim("seq", min=2, max=64)
    ids = torch.randint(0, 1000, (1, 16))
    t = trace_module(m, (ids,), dynamic_shapes=({1: seq},))
    graphopt.verify(t.graph)
    assert str(t.graph.inputs[0].type) == "i64[1, seq]"
    for n in (16, 9):
        x = torch.randint(0, 1000, (1, n))
        ref = eager(m, x)
        ref = ref.last_hidden_state if hasattr(ref, "last_hidden_state") else ref.logits
        out = run_reference(t.graph, [x.numpy()])[0]
        np.testing.assert_allclose(out, ref.numpy(), rtol=1e-4, atol=1e-4)
