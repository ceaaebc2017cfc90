"""Quantized weights against float32 on the suite's decode steps (issue 13): each model
compiled by graphopt at -O2 in float32 and after ``quantize-weights`` (int8 per output
column and in blocks of 32 along K, int4 in blocks of 32 symmetric or with zero points;
w8a8 adds ``quantize-dynamic``), timed in this process with rounds interleaved.

    .venv/bin/python -m benchmarks.weight_quant [--models gpt2-decode,llama-decode] [--rounds 15]

Per model and precision: the weights' bytes one step reads (every matmul weight; the
embedding table only gathers a row), median ms of a step and tokens/s, the speedup over
float32, and the share of the bandwidth limit: a measured copy bandwidth (numpy, one
thread, read plus write) divided by those bytes. Accuracy against float32 on the same
inputs: the logits' cosine and whether the next token (argmax) agrees.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PRECISIONS = [("fp32", None), ("int8 per column", "quantize-weights{block=0}"),
              ("int8 block 32", "quantize-weights{block=32}"),
              ("w8a8 per column", "quantize-weights{block=0},quantize-dynamic"),
              ("w8a8 block 32", "quantize-weights{block=32},quantize-dynamic"),
              ("int4 block 32", "quantize-weights{bits=4,block=32}"),
              ("int4 block 32 zp", "quantize-weights{bits=4,block=32,zero-point=1}")]


def copy_bandwidth(mb: int = 512, rounds: int = 5) -> float:
    """GB/s of a large numpy copy, read plus write bytes."""
    a = np.ones(mb * 1024 * 1024 // 4, np.float32)
    b = np.empty_like(a)
    best = 0.0
    for _ in range(rounds):
        t0 = time.perf_counter()
        np.copyto(b, a)
        best = max(best, 2 * a.nbytes / (time.perf_counter() - t0) / 1e9)
    return best


def weight_bytes(graph) -> int:
    """Bytes of the matmul weights a step reads: MatMul/Gemm weight inputs (the quantized
    ones as their integers and scales)."""
    from graphopt.ops.weight_quant import matmul_weight

    total = 0
    for n in graph.walk():
        if n.op_type not in ("MatMul", "Gemm") or n.domain:
            continue
        q = matmul_weight(n)
        if q is not None:
            # (int4 data two a byte, as the kernel packs it; a zero point as the data)
            total += (q.q.size * q.bits + 7) // 8 + q.scale.nbytes + (
                (q.zero.size * q.bits + 7) // 8 if q.zero is not None else 0)
            continue
        b = n.inputs[1]
        p = b.producer if b is not None else None
        if p is not None and p.op_type == "Transpose":
            b = p.inputs[0]
        if b is not None and b.is_constant:
            total += b.type.numel() * b.type.dtype.numpy.itemsize
    return total


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="gpt2-decode,llama-decode")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--precisions", default=",".join(p for p, _ in PRECISIONS),
                    help="comma-separated labels of PRECISIONS (fp32 always runs: the others are compared with it)")
    args = ap.parse_args(argv)
    os.environ.setdefault("TVM_NUM_THREADS", "2")
    import graphopt
    from graphopt.bench.cases import load_arrays, suite_case
    from graphopt.pipeline import run_pipeline

    bw = copy_bandwidth()
    print(f"copy bandwidth (numpy, one thread, read + write): {bw:.1f} GB/s; load {os.getloadavg()[0]:.2f}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="graphopt-wq-") as tmp:
        for name in args.models.split(","):
            case = suite_case(name, Path(tmp))
            arrays = load_arrays(case.inputs)
            built = []
            wanted = set(args.precisions.split(",")) | {"fp32"}
            for label, spec in (p for p in PRECISIONS if p[0] in wanted):
                g = graphopt.import_onnx(case.onnx)
                if spec:
                    run_pipeline(g, spec)
                t0 = time.perf_counter()
                c = graphopt.optimize(g)
                built.append((label, c, weight_bytes(g), time.perf_counter() - t0))
            outs = {}
            for label, c, _, _ in built:
                o = c(*arrays)
                outs[label] = (o if isinstance(o, list) else [o])[0]
            times = {label: [] for label, *_ in built}
            for r in range(args.rounds + 2):
                for label, c, _, _ in built:
                    t0 = time.perf_counter()
                    c(*arrays)
                    if r >= 2:
                        times[label].append(time.perf_counter() - t0)
            ref = outs["fp32"].reshape(-1, outs["fp32"].shape[-1])
            base = statistics.median(times["fp32"])
            for label, c, nbytes, compile_s in built:
                ms = statistics.median(times[label]) * 1e3
                got = outs[label].reshape(ref.shape)
                cos = float(np.min((ref * got).sum(-1) / np.linalg.norm(ref, axis=-1) / np.linalg.norm(got, axis=-1)))
                agree = float((ref.argmax(-1) == got.argmax(-1)).mean())
                limit = bw * 1e9 / nbytes
                rows.append((case.name, label, nbytes / 1e6, ms, 1e3 / ms, base * 1e3 / ms, 1e3 / ms / limit, cos, agree,
                             compile_s))
                print(f"  {case.name:28s} {label:16s} {ms:8.2f} ms", flush=True)
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}\n")
    print("| model | weights | weights MB read per step | median ms | tokens/s | vs fp32 | of the bandwidth limit "
          "| logits cosine (min) | next token agrees | compile s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for m, label, mb, ms, tps, speed, share, cos, agree, cs in rows:
        print(f"| {m} | {label} | {mb:.0f} | {ms:.2f} | {tps:.1f} | {speed:.2f}x | {share * 100:.0f}% | {cos:.5f} | "
              f"{agree * 100:.0f}% | {cs:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
