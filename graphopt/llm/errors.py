"""The error a causal LM's compile or generate raises for a request it cannot serve."""

from __future__ import annotations

from ..errors import GraphoptError


class CausalLMError(GraphoptError, ValueError):
    """A causal LM graphopt cannot compile or run as asked: names the model, option or input."""
