"""graphopt.llm.sampling against transformers' logits warpers on the same logits (the
oracle), and the sampler's own contract: greedy is argmax, a seed repeats, top_k=1 is greedy."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers.generation.logits_process import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

from graphopt.llm.errors import CausalLMError
from graphopt.llm.sampling import Sampler, temperature, top_k, top_p

VOCAB = 64


def logits(seed: int, rows: int = 3) -> np.ndarray:
    # continuous values: no ties, where numpy's and torch's sorts could order them differently
    return np.random.default_rng(seed).normal(0, 3, (rows, VOCAB)).astype(np.float32)


def reference(warper, x: np.ndarray) -> np.ndarray:
    return warper(None, torch.from_numpy(x.copy())).numpy()


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), t=st.floats(0.05, 5.0))
def test_temperature_is_transformers(seed, t):
    x = logits(seed)
    np.testing.assert_array_equal(temperature(x, t), reference(TemperatureLogitsWarper(t), x))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(1, VOCAB + 5))
def test_top_k_is_transformers(seed, k):
    x = logits(seed)
    np.testing.assert_array_equal(top_k(x, k), reference(TopKLogitsWarper(k), x))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), p=st.floats(0.01, 0.999))
def test_top_p_is_transformers(seed, p):
    x = logits(seed)
    np.testing.assert_array_equal(top_p(x, p), reference(TopPLogitsWarper(p), x))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), t=st.floats(0.2, 3.0), k=st.integers(1, 40), p=st.floats(0.05, 0.99))
def test_chain_is_transformers_order(seed, t, k, p):
    x = logits(seed)
    want = x
    for w in (TemperatureLogitsWarper(t), TopKLogitsWarper(k), TopPLogitsWarper(p)):
        want = reference(w, want)
    np.testing.assert_array_equal(Sampler(True, t, k, p).warp(x), want)


def test_greedy_is_argmax_and_ignores_the_warpers():
    x = logits(1)
    s = Sampler(do_sample=False, temperature=0.5, top_k=3)
    np.testing.assert_array_equal(s.choose(x, s.rng()), x.argmax(-1))


def test_sampling_repeats_with_a_seed_and_stays_inside_top_k():
    x = logits(2, rows=1)
    s = Sampler(do_sample=True, top_k=5, seed=7)
    a = [int(s.choose(x, rng)[0]) for rng in [s.rng()] for _ in range(50)]
    b = [int(s.choose(x, rng)[0]) for rng in [s.rng()] for _ in range(50)]
    assert a == b
    assert set(a) <= set(np.argsort(x[0])[-5:].tolist())
    assert len(set(a)) > 1  # it samples: five candidates, fifty draws


def test_top_k_one_is_greedy():
    x = logits(3)
    s = Sampler(do_sample=True, top_k=1, seed=0)
    np.testing.assert_array_equal(s.choose(x, s.rng()), x.argmax(-1))


@pytest.mark.parametrize("kwargs, word", [({"temperature": 0.0}, "temperature"), ({"top_k": -1}, "top_k"),
                                          ({"top_p": 1.5}, "top_p")])
def test_bad_arguments_name_themselves(kwargs, word):
    with pytest.raises(CausalLMError, match=word):
        Sampler(do_sample=True, **kwargs)
