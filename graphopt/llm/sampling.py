"""Choosing the next token from logits, in numpy: greedy, or sampling after temperature,
top-k and top-p in transformers' order and with its semantics (TemperatureLogitsWarper,
TopKLogitsWarper, TopPLogitsWarper with min_tokens_to_keep=1), seeded."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from .errors import CausalLMError


@dataclass(frozen=True)
class Sampler:
    """How `generate` picks tokens. ``do_sample=False`` is greedy (argmax, ties to the
    lowest id as torch.argmax does); otherwise the scores go through temperature, top-k,
    top-p and are sampled from their softmax with a numpy Generator seeded by ``seed``."""

    do_sample: bool = False
    temperature: Optional[float] = None
    top_k: Optional[int] = None
    top_p: Optional[float] = None
    seed: Optional[int] = None

    def __post_init__(self):
        if self.temperature is not None and not self.temperature > 0:
            raise CausalLMError(f"temperature must be positive, got {self.temperature}")
        if self.top_k is not None and (not isinstance(self.top_k, int) or self.top_k < 0):
            raise CausalLMError(f"top_k must be a non-negative int, got {self.top_k!r}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise CausalLMError(f"top_p must be in (0, 1], got {self.top_p}")

    def rng(self) -> np.random.Generator:
        return np.random.default_rng(self.seed)

    def warp(self, scores: np.ndarray) -> np.ndarray:
        """``scores`` [batch, vocab] after the warpers sampling applies (a new array)."""
        scores = np.array(scores, dtype=np.float32)
        if self.temperature is not None and self.temperature != 1.0:
            scores = temperature(scores, self.temperature)
        if self.top_k:
            scores = top_k(scores, self.top_k)
        if self.top_p is not None and self.top_p < 1.0:
            scores = top_p(scores, self.top_p)
        return scores

    def choose(self, logits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The next token of each row of ``logits`` [batch, vocab], as int64 [batch]."""
        if not self.do_sample:
            return np.argmax(logits, axis=-1).astype(np.int64)
        w = self.warp(logits).astype(np.float64)
        probs = np.exp(w - w.max(axis=-1, keepdims=True))
        probs /= probs.sum(axis=-1, keepdims=True)  # (in float64: choice checks the sum to 1e-8)
        return np.array([rng.choice(probs.shape[-1], p=row) for row in probs], dtype=np.int64)


def temperature(scores: np.ndarray, t: float) -> np.ndarray:
    # scores / t
    return (scores / np.float32(t)).astype(np.float32)


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    # keep the scores at least the k-th largest (ties at the k-th kept, as transformers does)
    k = min(max(k, 1), scores.shape[-1])
    kth = np.partition(scores, -k, axis=-1)[..., -k, None]
    return np.where(scores < kth, np.float32(-np.inf), scores)


def top_p(scores: np.ndarray, p: float) -> np.ndarray:
    # drop the smallest scores whose softmax mass sums to at most 1 - p; the largest always stays
    order = np.argsort(scores, axis=-1, kind="stable")
    ascending = np.take_along_axis(scores, order, axis=-1)
    cumulative = np.cumsum(softmax(ascending), axis=-1)
    drop_sorted = cumulative <= (1 - p)
    drop_sorted[..., -1] = False
    drop = np.zeros_like(drop_sorted)
    np.put_along_axis(drop, order, drop_sorted, axis=-1)
    return np.where(drop, np.float32(-np.inf), scores)


def softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float32)
    e = np.exp(x - np.max(x, axis=-1, keepdims=True))
    return e / np.sum(e, axis=-1, keepdims=True)
