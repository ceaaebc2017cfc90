"""LLM generation: a transformers causal LM compiled as prefill and decode programs over a
static key/value cache (`CompiledCausalLM`), with transformers-like `generate`."""

from __future__ import annotations

from .errors import CausalLMError


def is_causal_lm(model) -> bool:
    """Whether ``model`` is a transformers model that generates text (GPT2LMHeadModel,
    LlamaForCausalLM, ...): decoder-only, ``can_generate()``."""
    can = getattr(model, "can_generate", None)
    config = getattr(model, "config", None)
    if not callable(can) or config is None or getattr(config, "is_encoder_decoder", False):
        return False
    return bool(can())


def optimize_causal_lm(model, target: str = "cpu", **options):
    """``graphopt.optimize(causal_lm)``: see `CompiledCausalLM`."""
    from .model import CompiledCausalLM

    return CompiledCausalLM(model, target, **options)


__all__ = ["CausalLMError", "is_causal_lm", "optimize_causal_lm"]
