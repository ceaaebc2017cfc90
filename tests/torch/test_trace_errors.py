"""A failed trace says the root cause and the user's source line, without terminal colour
codes, and a known workaround where there is one (issue 10)."""

import pytest
import torch

import graphopt
from graphopt.frontend.torch_trace import TraceError


class Small(torch.nn.Module):
    def forward(self, x):
        return torch.relu(x) * 2


def _chained_conversion_error():
    """What torch.onnx raises when its decomposition fails: a coloured summary whose
    cause, chained, holds the reason and the model's line."""
    try:
        try:
            raise ValueError("Cannot view a tensor with shape torch.Size([2, 4, 2, 16]) and strides (128, 16, 64, 1) "
                             "as a tensor with shape (2, 4, 32)!\n\nWhile executing %view_4\nOriginal traceback:\n"
                             'File "/models/mymodel.py", line 12, in forward\n    h = self.block(x)\n'
                             '  File "/models/mymodel.py", line 368, in forward\n'
                             "    attn_output = attn_output.reshape(*input_shape, -1)\n")
        except ValueError as inner:
            raise RuntimeError("Failed to decompose the FX graph for ONNX compatibility. \x1b[96mThis is step "
                               "2/3\x1b[0m of exporting the model to ONNX. Next steps:\n- Create an issue") from inner
    except RuntimeError as outer:
        return outer


def test_a_conversion_failure_names_the_root_cause_and_line_without_colour_codes(monkeypatch):
    err = _chained_conversion_error()

    def fail(*a, **k):
        raise err

    monkeypatch.setattr(torch.onnx, "export", fail)
    with pytest.raises(TraceError) as e:
        graphopt.trace(Small(), torch.randn(3))
    msg = str(e.value)
    assert "\x1b" not in msg
    assert "torch.onnx could not convert Small: Failed to decompose the FX graph for ONNX compatibility." in msg
    assert "cause: ValueError: Cannot view a tensor with shape torch.Size([2, 4, 2, 16])" in msg
    assert "at /models/mymodel.py:368 in forward: attn_output = attn_output.reshape(*input_shape, -1)" in msg
    assert "Next steps" not in msg


def test_an_export_failure_on_a_cache_output_suggests_use_cache_false(monkeypatch):
    def fail(*a, **k):
        raise RuntimeError("Found <class 'transformers.cache_utils.EncoderDecoderCache'> in output, which is not "
                           "a known type. If this type holds tensors, you need to register a pytree for it.")

    monkeypatch.setattr(torch.export, "export", fail)
    with pytest.raises(TraceError, match="use_cache=False"):
        graphopt.trace(Small(), torch.randn(3))


def _tiny_t5(attn):
    from transformers import T5Config, T5ForConditionalGeneration

    cfg = T5Config(vocab_size=64, d_model=32, d_kv=16, d_ff=64, num_layers=2, num_decoder_layers=2, num_heads=2,
                   decoder_start_token_id=0, use_cache=False, attn_implementation=attn)
    return T5ForConditionalGeneration(cfg).eval()


@pytest.mark.slow
def test_t5_with_sdpa_attention_says_the_cause_the_line_and_the_eager_workaround():
    """Reproduced with transformers 5.24 and torch 2.13: torch.onnx's decomposition cannot
    view sdpa's transposed output; eager attention exports."""
    ids = torch.randint(0, 64, (2, 4))
    kwargs = {"input_ids": ids, "decoder_input_ids": ids}
    with pytest.raises(TraceError) as e:
        graphopt.trace(_tiny_t5("sdpa"), (), kwargs=kwargs)
    msg = str(e.value)
    assert "\x1b" not in msg
    assert "cause: ValueError: Cannot view a tensor with shape" in msg
    assert "modeling_t5.py:" in msg and "reshape(*input_shape, -1)" in msg
    assert 'attn_implementation="eager"' in msg
    g = graphopt.trace(_tiny_t5("eager"), (), kwargs=kwargs)  # the workaround holds
    assert g.outputs
