"""LLM generation side by side (issue 15): transformers' eager ``generate`` against
graphopt's `CompiledCausalLM` at fp32, int8 (weight-only, per output column), w8a8 (int8
weights and run-time int8 activations, the integer kernel) and int4 (weight-only, blocks of
32), same prompt, greedy, rounds
interleaved, in one process.

    .venv/bin/python -m benchmarks.llm [--models gpt2,llama] [--prompt 128] [--new 64] [--rounds 3]

Models: GPT-2 small and the ~336M Llama-style model (hidden 1024, 24 layers, GQA 16/4,
intermediate 2816, vocab 32000, untied head), random weights, nothing downloaded. Per
system: the matmul weights' MB one decode token reads (every Linear/Conv1D weight and the
LM head; the input embedding only gathers rows), median prefill ms (to the first token's
logits), decode tokens/s (the steps after the first token), and the share of the
bandwidth limit: a measured copy bandwidth (numpy, read plus write) over those bytes.
graphopt's programs are compiled before the first round (compile time printed apart).
Then int8, w8a8 and int4 against fp32 along fp32's greedy tokens (teacher forcing, `forced_logits`): how
often the next token (argmax) agrees, the mean KL(fp32 || int8) of the next-token
distributions, and how many of int8's own greedy tokens equal fp32's. Random weights give
flat distributions with near ties, so agreement here is a lower bound for a trained model.
llama.cpp and onnxruntime-genai are not installed on these machines: their rows are in
the issue, measured elsewhere.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np


class _Clock:
    """A streamer that notes when each new token arrives."""

    def __init__(self):
        self.times = []

    def put(self, value):
        self.times.append(time.perf_counter())

    def end(self):
        pass


def matmul_bytes(model, quantize) -> int:
    """Bytes of the weights a decode token reads: every 2-D weight of a Linear or
    transformers Conv1D, and the LM head (a tied head once); int8/w8a8: one byte each plus
    a float32 scale per output column; int4: half a byte each plus a float32 scale (and
    the kernel's float32 zero term) per block of 32."""
    import torch

    seen, total = set(), 0
    for mod in model.modules():
        w = getattr(mod, "weight", None)
        if not isinstance(w, torch.Tensor) or w.dim() != 2 or isinstance(mod, torch.nn.Embedding):
            continue
        if type(mod).__name__ not in ("Linear", "Conv1D") or id(w) in seen:
            continue
        seen.add(id(w))
        total += _bytes(w, quantize)
    head = model.get_output_embeddings().weight
    if id(head) not in seen:
        total += _bytes(head, quantize)
    return total


def _bytes(w, quantize) -> int:
    if quantize == "int4":
        return w.numel() // 2 + 8 * (w.numel() // 32)
    return w.numel() + 4 * min(w.shape) if quantize else w.numel() * 4


def build(name: str):
    import torch

    from graphopt.bench import cases

    torch.manual_seed(0)
    m = cases._gpt2(False) if name == "gpt2" else cases._llama(False)
    m.config.use_cache = True
    return m


def eager_run(model, ids, new):
    import torch

    clock = _Clock()
    t0 = time.perf_counter()
    with torch.no_grad():
        model.generate(torch.from_numpy(ids), max_new_tokens=new, min_new_tokens=new, do_sample=False,
                       streamer=clock)
    t = clock.times[1:]  # the first put is the prompt
    return (t[0] - t0) * 1e3, (len(t) - 1) / (t[-1] - t[0])


def graphopt_run(fast, ids, new):
    fast.generate(ids, new)
    s = fast.last_stats
    return s.prefill_ms, s.decode_tokens_per_s


def main(argv=None) -> int:
    from benchmarks.weight_quant import copy_bandwidth

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="gpt2,llama")
    ap.add_argument("--prompt", type=int, default=128)
    ap.add_argument("--new", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    import torch

    import graphopt

    torch.set_num_threads(args.threads)
    os.environ.setdefault("TVM_NUM_THREADS", str(args.threads))
    bw = copy_bandwidth()
    print(f"copy bandwidth (read+write): {bw:.1f} GB/s; load average {os.getloadavg()[0]:.2f}; "
          f"prompt {args.prompt}, {args.new} new tokens, {args.threads} threads, median of {args.rounds} rounds")
    for name in args.models.split(","):
        model = build(name)
        rng = np.random.default_rng(0)
        ids = rng.integers(3, model.config.vocab_size, (1, args.prompt)).astype(np.int64)
        max_length = args.prompt + args.new
        systems = {"transformers eager fp32": (lambda ids, m=model: eager_run(m, ids, args.new),
                                               matmul_bytes(model, None))}
        fasts = {}
        for label, q in (("graphopt fp32", None), ("graphopt int8", "int8"), ("graphopt w8a8", "w8a8"),
                         ("graphopt int4", "int4")):
            t0 = time.perf_counter()
            fast = graphopt.optimize(model, max_length=max_length, prefill_buckets=[args.prompt], quantize=q)
            fast.program(1, args.prompt), fast.program(1, 1)
            print(f"{name}: {label} compiled in {time.perf_counter() - t0:.0f} s")
            systems[label] = (lambda ids, f=fast: graphopt_run(f, ids, args.new), matmul_bytes(model, q))
            fasts[label] = fast
        results = {k: [] for k in systems}
        for _ in range(args.rounds):
            for label, (fn, _) in systems.items():
                results[label].append(fn(ids))
        print(f"\n{name} (load average {os.getloadavg()[0]:.2f})")
        print(f"| system | weights MB | prefill-{args.prompt} ms | decode tok/s | % of the bandwidth limit |")
        print("|---|---:|---:|---:|---:|")
        for label, (_, nbytes) in systems.items():
            pre = statistics.median(r[0] for r in results[label])
            tok = statistics.median(r[1] for r in results[label])
            limit = bw * 1e9 / nbytes
            print(f"| {label} | {nbytes / 1e6:.0f} | {pre:.1f} | {tok:.1f} | {100 * tok / limit:.0f}% |")
        for q in ("int8", "w8a8", "int4"):
            print(accuracy(fasts["graphopt fp32"], fasts[f"graphopt {q}"], ids, args.new, q))
    return 0


def accuracy(fp32, int8, ids, new, label: str = "int8") -> str:
    ref = fp32.generate(ids, new)
    cont = ref[:, ids.shape[1]:]
    a, b = fp32.forced_logits(ids, cont), int8.forced_logits(ids, cont)
    agree = float(np.mean(a.argmax(-1) == b.argmax(-1)))

    def log_softmax(x):
        x = x.astype(np.float64)
        x = x - x.max(-1, keepdims=True)
        return x - np.log(np.exp(x).sum(-1, keepdims=True))

    la, lb = log_softmax(a), log_softmax(b)
    kl = float(np.mean(np.sum(np.exp(la) * (la - lb), axis=-1)))
    own = int8.generate(ids, new)[:, ids.shape[1]:]
    same = int(np.sum(own == cont))
    return (f"{label} vs fp32 over {new} tokens: next-token agreement {100 * agree:.1f}% (teacher-forced), "
            f"mean KL {kl:.2e} nats, {same}/{new} of {label}'s own greedy tokens equal fp32's")


if __name__ == "__main__":
    raise SystemExit(main())
