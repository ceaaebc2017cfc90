"""CompiledCausalLM: a transformers causal LM compiled by graphopt as two kinds of program
over one static key/value cache, and a `generate` that drives them.

- decode: one new token per row (static shapes: ``[B, 1]`` ids, a ``max_length`` cache);
- prefill: the prompt, right-padded to the smallest bucket that holds it (16, 32, 64, ...
  up to ``max_length``). The padding is exact: causal attention keeps it out of the
  prompt's positions, the LM head reads only the prompt's last one, and the decode steps
  overwrite the cache slots it filled before anything reads them.

Programs are compiled when first needed (one per batch size and bucket) and hold the
model's weights once between them (`TvmStage.share_parameters`). The cache stays in TVM
tensors on the device between steps.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from .errors import CausalLMError
from .sampling import Sampler

# "int8"/"int4": weight-only int8/int4 matmuls; "w8a8": int8 weights and run-time int8
# activations (quantize-dynamic), which the CPU computes with the integer kernel.
QUANTIZE_MODES = ("int8", "int4", "w8a8")
INT4_BLOCK = 32  # int4's default rows of K per scale (llama.cpp's Q4_0, onnxruntime-genai's)
STEP_FORMAT = 2  # the step's inputs (graphopt.llm.step); part of the program cache's key


@dataclass
class GenerationStats:
    """What the last `generate` call took (milliseconds; tokens per second)."""

    prompt_tokens: int = 0
    new_tokens: int = 0
    prefill_ms: float = 0.0          # the prefill program, to its logits on the host
    first_token_ms: float = 0.0      # from the call to the first new token chosen
    decode_ms: float = 0.0           # the decode steps after the first token
    compile_s: float = 0.0           # programs compiled (or loaded) during the call
    compiled: int = 0                # programs compiled during the call
    loaded: int = 0                  # programs loaded from the program cache

    @property
    def decode_tokens_per_s(self) -> float:
        steps = self.new_tokens - 1
        return steps / (self.decode_ms / 1e3) if steps > 0 and self.decode_ms > 0 else 0.0

    def summary(self) -> str:
        return (f"prompt {self.prompt_tokens} tokens, {self.new_tokens} new: prefill {self.prefill_ms:.1f} ms, "
                f"first token {self.first_token_ms:.1f} ms, decode {self.decode_tokens_per_s:.1f} tokens/s"
                + (f" (compiled {self.compiled}, loaded {self.loaded} programs: {self.compile_s:.1f} s)"
                   if self.compiled or self.loaded else ""))


@dataclass
class _Program:
    compiled: Any            # CompiledModel
    stage: Any               # its one TvmStage
    batch: int
    length: int              # new tokens per row


@dataclass
class _Cache:
    keys: list
    values: list
    batch: int = 0
    pads: Any = None         # per row, the left padding of the current prompt
    mask: Any = None         # [B, max_length] on the device: 0 at those pads, else 1


def default_buckets(max_length: int) -> list[int]:
    out, b = [], 16
    while b < max_length:
        out.append(b)
        b *= 2
    return out + [max_length]


class CompiledCausalLM:
    """``graphopt.optimize(causal_lm)``: call `generate` as transformers' ``model.generate``.

    ``max_length``: the cache's positions, prompt plus new tokens (default: 256, or the
    model's position limit if smaller); ``prefill_buckets``: prompt lengths prefill is
    compiled for; ``quantize="int8"`` or ``"int4"`` (``quant_block``: 0 per output column,
    else rows of K per scale; default 0 for int8, 32 for int4): weight-only int8/int4
    matmuls, ``"w8a8"``: int8 weights and int8 activations
    quantized at run time (per tensor), summed in int32; ``program_cache``: a folder where compiled
    programs are kept and found again, under a key of the weights, config and options (so
    a second process loads instead of compiling). Other options go to the compile
    (``opt_level``, ``tune_trials``...)."""

    def __init__(self, model, target: str = "cpu", *, max_length: Optional[int] = None,
                 prefill_buckets: Optional[Sequence[int]] = None, quantize: Optional[str] = None,
                 quant_block: Optional[int] = None, program_cache=None, **compile_options):
        from .step import CausalLMStep, cache_layout, check_max_length

        name = type(model).__name__
        if quantize is not None and quantize not in QUANTIZE_MODES:
            raise CausalLMError(f"{name}: quantize={quantize!r} is not supported (supported: "
                                f"{', '.join(QUANTIZE_MODES)})")
        limit = getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", None)
        max_length = max_length or min(256, limit or 256)
        check_max_length(model, max_length)
        buckets = sorted(set(prefill_buckets or default_buckets(max_length)))
        if buckets[0] < 1 or buckets[-1] > max_length:
            raise CausalLMError(f"{name}: prefill buckets must lie in 1..max_length ({max_length}), got {buckets}")
        self.model_name = name
        self.config = model.config
        self.target = target
        self.max_length = max_length
        self.prefill_buckets = buckets
        self.quantize = quantize
        self.quant_block = quant_block if quant_block is not None else INT4_BLOCK if quantize == "int4" else 0
        self.compile_options = compile_options
        self.layout = cache_layout(model)
        gen = getattr(model, "generation_config", None)
        self.generation_defaults = {k: getattr(gen, k, None) for k in ("eos_token_id", "pad_token_id")}
        self._step = CausalLMStep(model.eval(), max_length).eval()
        self.program_dir = Path(program_cache).expanduser() / self._key(model) if program_cache is not None else None
        self._programs: dict[tuple[int, int], _Program] = {}
        self.counts = {"compiled": 0, "loaded": 0}   # programs, since construction
        self._weights: dict = {}     # content -> the TVM tensor every program shares
        self._cache: Optional[_Cache] = None
        self.last_stats = GenerationStats()

    def __repr__(self) -> str:
        progs = ", ".join(f"{b}x{t}" for b, t in sorted(self._programs))
        return (f"<graphopt.CompiledCausalLM of {self.model_name} on {self.target}, max_length {self.max_length}, "
                f"programs [{progs}]>")

    # ------------------------------------------------------------------ programs
    def program(self, batch: int, length: int) -> _Program:
        """The compiled step for ``batch`` rows of ``length`` new tokens (compiled now if
        it is not yet)."""
        key = (batch, length)
        if key not in self._programs:
            prog = self._load(batch, length)
            if prog is None:
                prog = self._compile(batch, length)
                self.counts["compiled"] += 1
                if self.program_dir is not None:
                    prog.compiled.save(self.program_dir / f"{batch}x{length}", oracle=False)
            else:
                self.counts["loaded"] += 1
            prog.stage.share_parameters(self._weights)
            self._programs[key] = prog
        return self._programs[key]

    def _key(self, model) -> str:
        """A digest of what the programs depend on: the weights, the config, the options
        and the versions of graphopt and the libraries under it."""
        import json

        import torch

        from ..codegen.artifact import versions
        from ..version import __version__

        h = hashlib.blake2b(digest_size=12)
        h.update(json.dumps({"config": model.config.to_json_string(), "class": type(model).__name__,
                             "max_length": self.max_length, "quantize": self.quantize, "block": self.quant_block,
                             "target": self.target, "options": repr(sorted(self.compile_options.items())),
                             "graphopt": __version__, "step": STEP_FORMAT, "versions": versions(), "torch": torch.__version__},
                            sort_keys=True).encode())
        for name, t in model.state_dict().items():
            h.update(name.encode())
            h.update(t.detach().contiguous().reshape(-1).view(torch.uint8).numpy())
        return f"{type(model).__name__}-{h.hexdigest()}"

    def _load(self, batch: int, length: int) -> Optional[_Program]:
        """The program from ``program_cache``, if one is there and loads (a stale or damaged
        one is compiled again and replaced)."""
        from ..codegen.artifact import MANIFEST, ArtifactError
        from ..runtime import CompiledModel
        from ..runtime.stages import TvmStage

        folder = self.program_dir / f"{batch}x{length}" if self.program_dir is not None else None
        if folder is None or not (folder / MANIFEST).is_file():
            return None
        try:
            compiled = CompiledModel.load(folder)
        except ArtifactError:
            return None
        stages = compiled.stages
        if len(stages) != 1 or not isinstance(stages[0], TvmStage):
            return None
        return _Program(compiled, stages[0], batch, length)

    def _compile(self, batch: int, length: int) -> _Program:
        from ..compiler import compile_model
        from ..frontend.torch_trace import trace_module
        from ..pipeline.api import run_pipeline
        from ..runtime.stages import TvmStage
        from .step import example_inputs

        traced = trace_module(self._step, example_inputs(self.layout, batch, length, self.max_length))
        graph = traced.graph
        # the cache inputs are written where they lie: the step costs its new rows, not a copy
        run_pipeline(graph, "fuse-cache-write{inplace=1}")
        if self.quantize:
            dynamic = ",quantize-dynamic" if self.quantize == "w8a8" else ""
            bits = 4 if self.quantize == "int4" else 8
            run_pipeline(graph, f"quantize-weights{{bits={bits},block={self.quant_block}}}{dynamic},dce")
        compiled = compile_model(graph, self.target, **self.compile_options)
        stages = compiled.stages
        if len(stages) != 1 or not isinstance(stages[0], TvmStage):
            raise CausalLMError(f"{self.model_name}: the {batch}x{length} step compiled to {len(stages)} stages "
                                "(onnxruntime fallback); generate needs it whole in TVM")
        return _Program(compiled, stages[0], batch, length)

    def cache_buffers(self) -> list:
        """The TVM tensors holding the key/value cache now (keys of every layer, then
        values; empty before the first call): the same buffers from step to step, since
        the programs write them in place."""
        return [] if self._cache is None else self._cache.keys + self._cache.values

    # ------------------------------------------------------------------ running
    def _fresh_cache(self, stage, batch: int) -> _Cache:
        if self._cache is not None and self._cache.batch == batch:
            return self._cache  # any contents will do: see the module docstring
        keys, values = self.layout.empty(batch, self.max_length)
        cache = _Cache([stage.to_device(k.numpy()) for k in keys], [stage.to_device(v.numpy()) for v in values], batch)
        self._cache = cache
        return cache

    def _left_pads(self, attention_mask, ids: np.ndarray, what: str) -> np.ndarray:
        """Per row, the prompt's left padding: transformers' ``attention_mask`` [B, S]
        zeros at the start of rows (none without a mask)."""
        batch, prompt = ids.shape
        if attention_mask is None:
            return np.zeros(batch, np.int64)
        m = np.asarray(attention_mask.cpu().numpy() if _is_torch(attention_mask) else attention_mask)
        if m.shape != ids.shape:
            raise CausalLMError(f"{self.model_name}.{what}: attention_mask {list(m.shape)} is not input_ids' "
                                f"shape {list(ids.shape)}")
        pads = (m == 0).cumprod(axis=1).sum(axis=1).astype(np.int64)
        if not np.array_equal(m != 0, np.arange(prompt)[None, :] >= pads[:, None]):
            raise CausalLMError(f"{self.model_name}.{what}: attention_mask has zeros after a row's first 1; "
                                "pad prompts on the left (tokenizer padding_side='left'), as generate expects")
        if (pads >= prompt).any():
            raise CausalLMError(f"{self.model_name}.{what}: a row of attention_mask is all zeros")
        return pads

    def _pad_rows(self, cache: _Cache, stage, pads: np.ndarray) -> None:
        """Give the cache the prompt's padding: the mask the steps read (0 at the pads)."""
        if cache.pads is not None and np.array_equal(cache.pads, pads):
            return
        mask = np.ones((len(pads), self.max_length), np.int64)
        mask[np.arange(self.max_length)[None, :] < pads[:, None]] = 0
        cache.pads, cache.mask = pads, stage.to_device(mask)

    def _run(self, prog: _Program, ids: np.ndarray, start: int, last: int, cache: _Cache) -> np.ndarray:
        """One step: the logits [B, vocab] of position ``last`` of ``ids``; the cache's
        tensors are replaced by the step's updated ones. A row's positions count from its
        first real token (transformers: cumsum of the mask - 1, pads at 0)."""
        stage = prog.stage
        n = self.layout.layers
        positions = np.maximum(start + np.arange(ids.shape[1])[None, :] - cache.pads[:, None], 0)
        args = [stage.to_device(ids), stage.to_device(np.array(start, np.int64)),
                stage.to_device(np.array([last], np.int64)), stage.to_device(positions), cache.mask]
        outs = stage.call_tensors(args + cache.keys + cache.values)
        cache.keys, cache.values = list(outs[1:1 + n]), list(outs[1 + n:1 + 2 * n])
        return outs[0].numpy()[:, -1, :]

    def next_logits(self, input_ids, attention_mask=None) -> np.ndarray:
        """The logits [B, vocab] the model gives the token after ``input_ids`` [B, S] (the
        prefill program's output; ``attention_mask``: left padding, as in `generate`)."""
        ids = self._ids(input_ids, "next_logits")
        batch, prompt = ids.shape
        if prompt > self.max_length:
            raise CausalLMError(f"{self.model_name}.next_logits: the prompt ({prompt}) is past max_length "
                                f"{self.max_length}")
        pads = self._left_pads(attention_mask, ids, "next_logits")
        prog, padded = self._prefill(ids, self._pad())
        cache = self._fresh_cache(prog.stage, batch)
        self._pad_rows(cache, prog.stage, pads)
        return self._run(prog, padded, 0, prompt - 1, cache)

    def forced_logits(self, input_ids, continuation) -> np.ndarray:
        """The logits [B, n, vocab] the model gives each of ``continuation``'s n tokens
        ([B, n]) after ``input_ids`` and the continuation's tokens before it (teacher
        forcing: a prefill, then a decode step per token), to compare two compiles (int8
        against fp32) along the same tokens."""
        ids = self._ids(input_ids, "forced_logits")
        cont = self._ids(continuation, "forced_logits")
        batch, prompt = ids.shape
        if cont.shape[0] != batch:
            raise CausalLMError(f"{self.model_name}.forced_logits: {cont.shape[0]} continuation rows for "
                                f"{batch} prompt rows")
        if prompt + cont.shape[1] > self.max_length:
            raise CausalLMError(f"{self.model_name}.forced_logits: prompt ({prompt}) + continuation "
                                f"({cont.shape[1]}) exceed max_length {self.max_length}")
        prog, padded = self._prefill(ids, self._pad())
        cache = self._fresh_cache(prog.stage, batch)
        self._pad_rows(cache, prog.stage, self._left_pads(None, ids, "forced_logits"))
        out = [self._run(prog, padded, 0, prompt - 1, cache)]
        decode = self.program(batch, 1) if cont.shape[1] > 1 else None
        for i in range(cont.shape[1] - 1):
            out.append(self._run(decode, cont[:, i:i + 1], prompt + i, 0, cache))
        return np.stack(out, axis=1)

    def _ids(self, input_ids, what: str) -> np.ndarray:
        ids = np.asarray(input_ids.cpu().numpy() if _is_torch(input_ids) else input_ids)
        if ids.ndim == 1:
            ids = ids[None, :]
        if ids.ndim != 2 or ids.dtype.kind not in "iu" or ids.shape[1] < 1:
            raise CausalLMError(f"{self.model_name}.{what}: input_ids must be a non-empty integer [batch, length], "
                                f"got {ids.dtype}{list(ids.shape)}")
        return ids.astype(np.int64)

    def _prefill(self, ids: np.ndarray, pad: int):
        """The prefill program for ``ids`` and ``ids`` padded to its bucket."""
        batch, prompt = ids.shape
        bucket = next(b for b in self.prefill_buckets + [self.max_length] if b >= prompt)
        padded = np.full((batch, bucket), pad, np.int64)
        padded[:, :prompt] = ids
        return self.program(batch, bucket), padded

    def generate(self, input_ids, max_new_tokens: int = 20, *, do_sample: bool = False,
                 temperature: Optional[float] = None, top_k: Optional[int] = None, top_p: Optional[float] = None,
                 eos_token_id=None, pad_token_id: Optional[int] = None, streamer=None, seed: Optional[int] = None,
                 attention_mask=None):
        """Like transformers' ``model.generate`` for these arguments: the prompt followed
        by up to ``max_new_tokens`` tokens per row ([B, S + n], torch if ``input_ids`` is
        a torch tensor, else numpy). Rows that reached ``eos_token_id`` (an id or a list)
        are padded with ``pad_token_id`` until all have. Prompts of different lengths are
        left-padded with ``attention_mask`` zeros, as transformers takes them. ``streamer``
        gets ``put`` and ``end`` calls as transformers' streamers do. ``seed`` makes
        sampling repeatable."""
        t0 = time.perf_counter()
        as_torch = _is_torch(input_ids)
        ids = self._ids(input_ids, "generate")
        batch, prompt = ids.shape
        if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
            raise CausalLMError(f"{self.model_name}.generate: max_new_tokens must be a positive int, got "
                                f"{max_new_tokens!r}")
        if prompt + max_new_tokens > self.max_length:
            raise CausalLMError(f"{self.model_name}.generate: prompt ({prompt}) + max_new_tokens "
                                f"({max_new_tokens}) exceed max_length {self.max_length}; compile with a larger "
                                "max_length")
        sampler = Sampler(do_sample, temperature, top_k, top_p, seed)
        pads = self._left_pads(attention_mask, ids, "generate")  # (checked before any compile)
        eos = self._eos(eos_token_id)
        pad = pad_token_id if pad_token_id is not None else (self._pad() if eos.size else 0)
        stats = GenerationStats(prompt_tokens=prompt)
        compiled_before, counts = time.perf_counter(), dict(self.counts)
        prefill, padded = self._prefill(ids, pad)
        decode = self.program(batch, 1) if max_new_tokens > 1 else None
        stats.compile_s = time.perf_counter() - compiled_before
        stats.compiled = self.counts["compiled"] - counts["compiled"]
        stats.loaded = self.counts["loaded"] - counts["loaded"]
        t0 += stats.compile_s  # the latencies are the programs', not their compiles
        if streamer is not None:
            streamer.put(self._as_torch(ids))

        cache = self._fresh_cache(prefill.stage, batch)
        self._pad_rows(cache, prefill.stage, pads)
        tp = time.perf_counter()
        logits = self._run(prefill, padded, 0, prompt - 1, cache)
        stats.prefill_ms = (time.perf_counter() - tp) * 1e3
        rng = sampler.rng()
        out = [ids]
        done = np.zeros(batch, dtype=bool)
        td = None
        for i in range(max_new_tokens):
            tok = sampler.choose(logits, rng)
            if eos.size:
                tok = np.where(done, pad, tok)
                done |= np.isin(tok, eos)
            out.append(tok[:, None])
            if streamer is not None:
                streamer.put(self._as_torch(tok))
            if i == 0:
                stats.first_token_ms = (time.perf_counter() - t0) * 1e3
                td = time.perf_counter()
            stats.new_tokens = i + 1
            if done.all() or i == max_new_tokens - 1:
                break
            logits = self._run(decode, tok[:, None], prompt + i, 0, cache)
        if td is not None:
            stats.decode_ms = (time.perf_counter() - td) * 1e3
        if streamer is not None:
            streamer.end()
        self.last_stats = stats
        result = np.concatenate(out, axis=1)
        return self._as_torch(result) if as_torch else result

    # ------------------------------------------------------------------ helpers
    def _eos(self, eos_token_id) -> np.ndarray:
        """The ids that end a row: the argument, else the model's generation config's."""
        if eos_token_id is None:
            eos_token_id = self.generation_defaults.get("eos_token_id")
        if eos_token_id is None:
            return np.zeros(0, np.int64)
        return np.atleast_1d(np.asarray(eos_token_id, np.int64))

    def _pad(self) -> int:
        """What follows a finished row's eos, as transformers pads it: the generation
        config's pad_token_id, else its (first) eos."""
        pad = self.generation_defaults.get("pad_token_id")
        if pad is None:
            eos = self._eos(None)
            pad = int(eos[0]) if eos.size else 0
        return int(pad)

    @staticmethod
    def _as_torch(a: np.ndarray):
        import torch

        return torch.from_numpy(np.ascontiguousarray(a))


def _is_torch(x) -> bool:
    return type(x).__module__.startswith("torch")
