"""BERT-base and GPT-2 small on this machine: graphopt against torch eager, torch.compile
(inductor) and onnxruntime on the exported ONNX, in one run.

    .venv/bin/python benchmarks/transformers_bench.py [--small] [--rounds 20] [--json out.json]

Models are built from transformers configs with random weights (nothing is downloaded).
Cases: BERT-base encoder at seq 128; GPT-2 small prefill at seq 128; one GPT-2 decode step
with 128 past tokens. Every system runs with 2 threads, batch 1, float32.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "torch"))

THREADS = 2


def build_cases(small: bool):
    import torch
    from transformers import BertConfig, BertModel, GPT2Config, GPT2LMHeadModel

    from torch_models import GPT2DecodeStep, gpt2_past

    torch.manual_seed(0)
    if small:
        bert = BertModel(BertConfig(num_hidden_layers=2, hidden_size=64, num_attention_heads=2,
                                    intermediate_size=128, vocab_size=1000)).eval()
        gcfg = GPT2Config(n_layer=2, n_embd=64, n_head=2, vocab_size=1000, bos_token_id=0, eos_token_id=0)
        seq = 32
    else:
        bert = BertModel(BertConfig()).eval()
        gcfg = GPT2Config(bos_token_id=0, eos_token_id=0)
        seq = 128
    gpt2 = GPT2LMHeadModel(gcfg).eval()
    gpt2.config.use_cache = False
    ids = torch.randint(0, bert.config.vocab_size, (1, seq))
    gids = torch.randint(0, gcfg.vocab_size, (1, seq))
    step = GPT2DecodeStep(gpt2).eval()
    keys, values = gpt2_past(gpt2, seq)
    nxt = torch.randint(0, gcfg.vocab_size, (1, 1))
    tag = "small" if small else "base"
    return [
        (f"BERT-{tag} seq {seq}", bert, (ids,)),
        (f"GPT-2 {tag} prefill seq {seq}", gpt2, (gids,)),
        (f"GPT-2 {tag} decode, {seq} past", step, (nxt, keys, values)),
    ]


def first_tensor(out):
    import torch
    from torch.utils import _pytree as pytree

    return next(x for x in pytree.tree_flatten(out)[0] if isinstance(x, torch.Tensor))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="2-layer configs at seq 32 (a quick check)")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--json", default="benchmarks/results/transformers.json")
    ap.add_argument("--skip", default="", help="comma-separated systems to leave out")
    args = ap.parse_args(argv)

    import numpy as np
    import onnxruntime as ort
    import torch

    import graphopt
    from graphopt.frontend.torch_module import optimize_module
    from graphopt.bench.harness import Entry, machine, markdown, summarize, time_interleaved, write_json

    torch.set_num_threads(THREADS)
    skip = set(filter(None, args.skip.split(",")))
    entries: list[Entry] = []
    for name, model, inputs in build_cases(args.small):
        print(f"== {name}", flush=True)
        with torch.no_grad():
            ref = first_tensor(model(*inputs)).numpy()
        fns, prep, errs = {}, {}, {}

        def check(system, out):
            errs[system] = float(np.abs(np.asarray(out, dtype=np.float64) - ref).max())

        with torch.no_grad():
            fns["torch eager"] = lambda m=model, i=inputs: m(*i)
        if "torch.compile" not in skip:
            t0 = time.perf_counter()
            cm = torch.compile(model)
            with torch.no_grad():
                check("torch.compile", first_tensor(cm(*inputs)).numpy())
            prep["torch.compile"] = time.perf_counter() - t0

            def run_compiled(cm=cm, i=inputs):
                with torch.no_grad():
                    return cm(*i)

            fns["torch.compile"] = run_compiled
        t0 = time.perf_counter()
        compiled = optimize_module(model, inputs, target="cpu")
        prep["graphopt"] = time.perf_counter() - t0
        check("graphopt", first_tensor(compiled(*inputs)).numpy())
        fns["graphopt"] = lambda c=compiled, i=inputs: c(*i)
        if "onnxruntime" not in skip:
            t0 = time.perf_counter()
            so = ort.SessionOptions()
            so.intra_op_num_threads = THREADS
            so.inter_op_num_threads = 1
            # Spinning worker threads would steal the cores from the system timed next.
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
            sess = ort.InferenceSession(graphopt.export_onnx(compiled.graph).SerializeToString(), so,
                                        providers=["CPUExecutionProvider"])
            flat = [x.numpy() for x in torch.utils._pytree.tree_flatten(inputs)[0]]
            feeds = dict(zip(compiled.input_names, flat))
            check("onnxruntime", sess.run(None, feeds)[0])
            prep["onnxruntime"] = time.perf_counter() - t0
            fns["onnxruntime"] = lambda s=sess, f=feeds: s.run(None, f)

        def eager_call(m=model, i=inputs):
            with torch.no_grad():
                return m(*i)

        fns["torch eager"] = eager_call
        errs["torch eager"] = 0.0
        samples = time_interleaved(fns, args.rounds)
        for system, s in samples.items():
            e = summarize(Entry(name, system, prepare_s=prep.get(system), max_abs_err=errs.get(system)), s)
            entries.append(e)
            print(f"  {system:14} {e.median_ms:9.2f} ms  (prepare {e.prepare_s or 0:.1f} s)", flush=True)
    table = markdown(entries)
    meta = {"date": time.strftime("%Y-%m-%d"), "machine": machine(), "threads": THREADS,
            "command": "python " + " ".join([sys.argv[0], *(argv or sys.argv[1:])])}
    print()
    print(f"{meta['date']}, {meta['machine']}, {THREADS} threads; prepare = trace/export + compile")
    print(table)
    os.makedirs(os.path.dirname(args.json) or ".", exist_ok=True)
    write_json(args.json, entries, meta)
    return 0


if __name__ == "__main__":
    sys.exit(main())
