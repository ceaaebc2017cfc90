"""graphopt.optimize(causal_lm).generate against transformers' model.generate (the oracle)
on the tiny random-weight families of graphopt.testing.families: greedy tokens equal, eos
and padding as transformers does them, sampled tokens inside the model's own top-k, and the
programs' contract (weights held once, errors that name what is wrong).

The default run takes GPT-2 and Llama (GQA); ``-m slow`` runs every causal family."""

import numpy as np
import pytest
import torch

import graphopt
from graphopt.llm import CausalLMError
from graphopt.llm.model import CompiledCausalLM
from graphopt.testing import families as F

PROMPT = 7
NEW = 32
DEFAULT = ("gpt2", "llama")
CAUSAL = ("gpt2", "llama", "qwen2", "mistral", "phi3", "gemma")


def prompt(rows: int = 1, length: int = PROMPT, seed: int = 2) -> torch.Tensor:
    return torch.randint(3, F.VOCAB, (rows, length), generator=torch.Generator().manual_seed(seed))


def model(name: str):
    return getattr(F, name)(use_cache=True).module


def reference(m, ids, **kwargs):
    with torch.no_grad():
        return m.generate(ids, do_sample=False, **kwargs)


@pytest.fixture(scope="module")
def llama():
    m = model("llama")
    return m, graphopt.optimize(m)


@pytest.mark.parametrize("name", [pytest.param(n, marks=[] if n in DEFAULT else [pytest.mark.slow]) for n in CAUSAL])
def test_greedy_tokens_are_transformers(name):
    m = model(name)
    fast = graphopt.optimize(m)
    assert isinstance(fast, CompiledCausalLM)
    ids = prompt()
    got = fast.generate(ids, max_new_tokens=NEW)
    want = reference(m, ids, max_new_tokens=NEW)
    assert got.dtype == torch.long
    assert torch.equal(got, want), f"{name}: first difference at {int((got != want).nonzero()[0, 1])}"
    assert fast.last_stats.new_tokens == NEW and fast.last_stats.prompt_tokens == PROMPT


def test_next_logits_match_torch(llama):
    m, fast = llama
    ids = prompt(length=5)
    with torch.no_grad():
        want = m(ids, use_cache=False).logits[:, -1].numpy()
    np.testing.assert_allclose(fast.next_logits(ids), want, rtol=1e-4, atol=1e-4)


def test_forced_logits_match_torch_at_every_position(llama):
    # the decode steps at positions 7..22 of the cache, against one full forward in torch
    m, fast = llama
    ids, cont = prompt(), prompt(length=16, seed=4)
    with torch.no_grad():
        want = m(torch.cat([ids, cont], 1), use_cache=False).logits[:, PROMPT - 1:-1].numpy()
    np.testing.assert_allclose(fast.forced_logits(ids, cont), want, rtol=1e-4, atol=1e-4)


def test_a_prompt_filling_its_bucket_and_numpy_in_numpy_out(llama):
    m, fast = llama
    ids = prompt(length=16)  # exactly the first bucket: no padding
    got = fast.generate(ids.numpy(), max_new_tokens=8)
    assert isinstance(got, np.ndarray)
    np.testing.assert_array_equal(got, reference(m, ids, max_new_tokens=8).numpy())


def test_eos_ends_a_row_and_pads_it_as_transformers_does(llama):
    m, fast = llama
    ids = prompt(rows=2, seed=5)
    free = reference(m, ids, max_new_tokens=12)
    eos = int(free[0, PROMPT + 3])  # row 0 reaches it at its 4th new token
    assert eos not in free[1, PROMPT:].tolist()  # (row 1 runs on: the case is the mixed one)
    got = fast.generate(ids, max_new_tokens=12, eos_token_id=eos, pad_token_id=1)
    want = reference(m, ids, max_new_tokens=12, eos_token_id=eos, pad_token_id=1)
    assert torch.equal(got, want)
    assert got[0, PROMPT + 4:].eq(1).all()


def test_left_padded_prompts_of_different_lengths_are_transformers(llama):
    m, fast = llama
    ids = prompt(rows=3, length=9, seed=6)
    mask = torch.ones_like(ids)
    mask[0, :3] = 0
    mask[2, :5] = 0
    ids = ids.masked_fill(mask == 0, 0)
    got = fast.generate(ids, max_new_tokens=10, attention_mask=mask, pad_token_id=0)
    want = reference(m, ids, max_new_tokens=10, attention_mask=mask, pad_token_id=0)
    assert torch.equal(got, want)
    # and a row's tokens do not depend on the pads in front of it
    alone = fast.generate(ids[2:, 5:], max_new_tokens=10)
    assert torch.equal(alone[0, 4:], got[2, 9:])


def test_all_rows_at_eos_stop_early(llama):
    m, fast = llama
    ids = prompt()
    first = int(reference(m, ids, max_new_tokens=1)[0, -1])
    got = fast.generate(ids, max_new_tokens=10, eos_token_id=[first, 999])
    assert got.shape == (1, PROMPT + 1) and int(got[0, -1]) == first
    assert fast.last_stats.new_tokens == 1


def test_sampled_tokens_repeat_with_a_seed_and_are_in_the_models_top_k(llama):
    m, fast = llama
    ids = prompt()
    a = fast.generate(ids, max_new_tokens=10, do_sample=True, top_k=4, temperature=0.7, seed=11)
    b = fast.generate(ids, max_new_tokens=10, do_sample=True, top_k=4, temperature=0.7, seed=11)
    assert torch.equal(a, b)
    with torch.no_grad():
        logits = m(a[:, :-1], use_cache=False).logits[0, PROMPT - 1:]
    for step, tok in enumerate(a[0, PROMPT:].tolist()):
        assert tok in logits[step].topk(4).indices.tolist(), f"step {step}: {tok} is not in the top 4"


class Recorder:
    def __init__(self):
        self.puts, self.ended = [], False

    def put(self, value):
        self.puts.append(value.tolist())

    def end(self):
        self.ended = True


def test_a_streamer_sees_the_prompt_then_each_token(llama):
    _, fast = llama
    ids = prompt()
    rec = Recorder()
    got = fast.generate(ids, max_new_tokens=5, streamer=rec)
    assert rec.puts[0] == ids.tolist() and rec.ended
    assert [p[0] for p in rec.puts[1:]] == got[0, PROMPT:].tolist()


def test_prefill_and_decode_hold_the_weights_once(llama):
    _, fast = llama
    fast.generate(prompt(), max_new_tokens=3)
    prefill, decode = fast.program(1, 16), fast.program(1, 1)
    assert len(prefill.stage.params) == len(decode.stage.params) > 0
    ptrs = lambda p: sorted(t.data_ptr() for t in p.stage.params)  # noqa: E731
    assert ptrs(prefill) == ptrs(decode)


def test_the_cache_is_written_in_place_step_after_step(llama):
    _, fast = llama
    fast.generate(prompt(), max_new_tokens=2)
    buffers = [t.data_ptr() for t in fast.cache_buffers()]
    assert len(buffers) == 2 * fast.layout.layers
    fast.generate(prompt(seed=9), max_new_tokens=12)  # a prefill and 11 decode steps later
    assert [t.data_ptr() for t in fast.cache_buffers()] == buffers
    for prog in (fast.program(1, 1), fast.program(1, 16)):
        written = [i["name"] for i in prog.compiled.manifest["inputs"] if i.get("written")]
        assert written == [f"keys_{i}" for i in range(2)] + [f"values_{i}" for i in range(2)]


def test_a_causal_lm_with_its_cache_on_optimizes_from_example_inputs():
    # transformers' default use_cache=True used to fail in torch.export ("Found DynamicCache in output")
    m = model("qwen2")
    assert m.config.use_cache
    ids = prompt()
    fast = graphopt.optimize(m, (ids,))
    assert torch.equal(fast.generate(ids, max_new_tokens=6), reference(m, ids, max_new_tokens=6))


@pytest.mark.parametrize("mode, cosine", [("int8", 0.999), ("w8a8", 0.995), ("int4", 0.98)])
def test_int8_weights_keep_the_logits(llama, mode, cosine):
    m, fast = llama
    q = graphopt.optimize(m, quantize=mode)
    ids = prompt()
    a, b = fast.next_logits(ids)[0], q.next_logits(ids)[0]
    assert np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)) > cosine
    assert not np.array_equal(a, b)  # the int8 kernels ran
    assert q.generate(ids, max_new_tokens=4).shape == (1, PROMPT + 4)


@pytest.mark.parametrize("call, words", [
    (lambda f, ids: f.generate(ids, max_new_tokens=64), "max_length 64"),
    (lambda f, ids: f.generate(ids, max_new_tokens=0), "max_new_tokens"),
    (lambda f, ids: f.generate(ids.float(), max_new_tokens=2), "input_ids"),
    (lambda f, ids: f.generate(ids, max_new_tokens=2, attention_mask=torch.tensor([[1] * 6 + [0]])), "left"),
    (lambda f, ids: f.generate(ids, max_new_tokens=2, attention_mask=torch.zeros(1, 7, dtype=torch.long)),
     "all zeros"),
    (lambda f, ids: f.generate(ids, max_new_tokens=2, attention_mask=torch.ones(1, 6, dtype=torch.long)), "shape"),
    (lambda f, ids: f.generate(ids, max_new_tokens=2, do_sample=True, top_p=2.0), "top_p"),
])
def test_requests_it_cannot_serve_say_what_is_wrong(llama, call, words):
    _, fast = llama
    with pytest.raises(CausalLMError, match=words):
        call(fast, prompt())


@pytest.mark.parametrize("options, words", [({"max_length": 65}, "64 positions"), ({"quantize": "int3"}, "int3"),
                                            ({"prefill_buckets": [128]}, "buckets")])
def test_compile_options_it_cannot_take_say_which(options, words):
    with pytest.raises(CausalLMError, match=words):
        graphopt.optimize(model("gpt2"), **options)
