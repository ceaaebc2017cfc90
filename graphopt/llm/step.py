"""The program graphopt compiles for a transformers causal LM: one forward step over a
static key/value cache.

    logits, keys', values' = step(input_ids[B, T], start[], last[1], position_ids[B, T],
                                  attention_mask[B, max_length], keys_0.., values_0..)

``keys_i``/``values_i`` are layer i's cache, ``[B, kv_heads, max_length, head_dim]``;
the step writes the T new positions ``start .. start+T-1`` into them and attends over the
whole cache with the causal mask the model builds from those positions (so the slots past
``start+T-1`` are never read, whatever they hold). ``attention_mask`` (1: a real token)
and ``position_ids`` carry left padding as transformers' generate does: a row's pads are
masked out of every query, and its tokens count positions from its first real one. ``last`` picks the one position whose
logits the LM head computes (transformers' ``logits_to_keep`` as an index), so a prefill
padded to its bucket reads the prompt's last token, and the head costs one row.

The cache enters as plain tensors, not as transformers' Cache objects, which torch.export
cannot return ("Found DynamicCache in output"): the model sees a StaticCache whose layers
hold the input tensors and update them out of place (`_InputLayer`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers.cache_utils import StaticLayer

from .errors import CausalLMError


@dataclass(frozen=True)
class CacheLayout:
    """The key/value cache of a model: per layer ``[batch, kv_heads, max_length, head_dim]``."""

    layers: int
    kv_heads: int
    key_dim: int
    value_dim: int
    dtype: torch.dtype

    def empty(self, batch: int, max_length: int) -> tuple[list, list]:
        k = [torch.zeros(batch, self.kv_heads, max_length, self.key_dim, dtype=self.dtype)
             for _ in range(self.layers)]
        v = [torch.zeros(batch, self.kv_heads, max_length, self.value_dim, dtype=self.dtype)
             for _ in range(self.layers)]
        return k, v


def cache_layout(model) -> CacheLayout:
    """The cache shapes of ``model``, from one token run eagerly (exact for any family:
    Gemma's head_dim, GQA, partial rotary)."""
    from transformers import DynamicCache

    with torch.no_grad():
        out = model(torch.zeros(1, 1, dtype=torch.long), use_cache=True,
                    **{cache_argument(model): DynamicCache(config=model.config)})
    cache = getattr(out, "cache", None)
    layers = (cache if cache is not None else out.past_key_values).layers
    k, v = layers[0].keys, layers[0].values
    return CacheLayout(len(layers), k.shape[1], k.shape[-1], v.shape[-1], k.dtype)


def cache_argument(model) -> str:
    """The forward's name for the cache: ``cache`` (transformers 5.2x), earlier
    ``past_key_values``."""
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def check_max_length(model, max_length: int) -> None:
    name = type(model).__name__
    if not isinstance(max_length, int) or max_length < 2:
        raise CausalLMError(f"{name}: max_length must be an int of at least 2, got {max_length!r}")
    limit = getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", None)
    if limit and max_length > limit:
        raise CausalLMError(f"{name}: max_length {max_length} is past the model's {limit} positions "
                            "(config.max_position_embeddings)")
    window = getattr(model.config, "sliding_window", None)
    if window and getattr(model.config, "use_sliding_window", True) and max_length > window:
        raise CausalLMError(f"{name}: max_length {max_length} is past its sliding window ({window}); "
                            "sliding-window caches are not supported yet")


class _InputLayer(StaticLayer):
    """One layer of the cache, holding the step's input tensors and updating them out of
    place (torch.export sees an index_copy, not a mutation of an input). StaticLayer's own
    mask sizes (the whole cache) and sequence length (``cumulative_length``: the step's
    start) are the step's."""

    def __init__(self, keys, values, start):
        super().__init__(keys.shape[2])
        self.keys, self.values = keys, values
        self.batch_size, self.num_heads = keys.shape[:2]
        self.k_head_dim, self.v_head_dim = keys.shape[-1], values.shape[-1]
        self.device, self.dtype = keys.device, keys.dtype
        self.cumulative_length = start
        self.is_initialized = True

    def update(self, key_states, value_states, *args, **kwargs):
        pos = torch.arange(key_states.shape[-2]) + self.cumulative_length
        self.keys = self.keys.index_copy(2, pos, key_states)
        self.values = self.values.index_copy(2, pos, value_states)
        return self.keys, self.values


class CausalLMStep(torch.nn.Module):
    """``model``'s forward over a static cache of ``max_length`` positions (see the module
    docstring)."""

    def __init__(self, model, max_length: int):
        super().__init__()
        self.model = model
        self.max_length = max_length
        self.cache_argument = cache_argument(model)

    def forward(self, input_ids, start, last, position_ids, attention_mask, keys, values):
        from transformers import StaticCache

        cache = StaticCache(config=self.model.config, max_cache_len=self.max_length)
        cache.layers = [_InputLayer(k, v, start) for k, v in zip(keys, values)]
        positions = torch.arange(input_ids.shape[1]) + start
        out = self.model(input_ids, attention_mask=attention_mask, position_ids=position_ids,
                         cache_position=positions, use_cache=True, logits_to_keep=last, **{self.cache_argument: cache})
        return out.logits, [layer.keys for layer in cache.layers], [layer.values for layer in cache.layers]


def example_inputs(layout: CacheLayout, batch: int, length: int, max_length: int) -> tuple:
    """Inputs of the step's shapes: ``length`` new tokens per row (a prefill bucket, or 1
    to decode)."""
    keys, values = layout.empty(batch, max_length)
    ids = torch.zeros(batch, length, dtype=torch.long)
    positions = torch.arange(length).repeat(batch, 1)
    mask = torch.ones(batch, max_length, dtype=torch.long)
    return ids, torch.tensor(0), torch.tensor([length - 1]), positions, mask, keys, values
