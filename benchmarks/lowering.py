"""Lowering benchmark: per light model, graphopt untuned (and tuned under a stated budget),
TVM's own ``from_onnx`` with its default pipeline, and onnxruntime (all optimizations,
2 threads): median latency, ratio to onnxruntime, compile and tuning time; then the
kernels that hold graphopt back (share of run time).

    .venv/bin/python benchmarks/lowering.py --models resnet50 squeezenet --runs 10
    .venv/bin/python benchmarks/lowering.py --models squeezenet --tune-time 20
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np


def median_ms(fn, runs: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1000)
    return statistics.median(ts)


def bench_ort(model, feeds, runs):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = 2
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return median_ms(lambda: sess.run(None, feeds), runs)


def bench_tvm_from_onnx(model, feeds, runs):
    import tvm
    from tvm import relax
    from tvm.relax.frontend.onnx import from_onnx

    from graphopt.codegen.target import Target

    t0 = time.perf_counter()
    mod = from_onnx(model, keep_params_in_input=False)
    ex = relax.build(mod, target=Target.parse("cpu").tvm)
    compile_s = time.perf_counter() - t0
    vm = relax.VirtualMachine(ex, tvm.cpu())
    args = [tvm.runtime.tensor(v) for v in feeds.values()]
    # TVM's untuned CPU code is 50-80x slower: one timed run is enough
    return median_ms(lambda: vm["main"](*args), 1, warmup=0), compile_s


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["resnet50", "squeezenet", "shufflenet", "inception_v1"])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--tune-trials", type=int, default=0)
    ap.add_argument("--tune-time", type=float, default=None, help="tuning budget in minutes per model")
    ap.add_argument("--cache-dir", default=None, help="tuning database folder (default: graphopt's cache)")
    ap.add_argument("--tvm-baseline", action="store_true", help="also time TVM's own from_onnx (slow)")
    ap.add_argument("--profile", type=int, default=5, help="show the N kernels that take the most time")
    args = ap.parse_args(argv)

    import graphopt
    from graphopt.api import optimize
    from graphopt.testing.models import light_model_inputs, randomized_light_model

    rows = []
    for name in args.models:
        m = randomized_light_model(name, drop_softmax=False)
        feeds = light_model_inputs(m)
        ort_ms = bench_ort(m, feeds, args.runs)
        t0 = time.perf_counter()
        cm = optimize(m, opt_level="O1")
        compile_s = time.perf_counter() - t0
        g_ms = median_ms(lambda: cm.run(**feeds), args.runs)
        row = {"model": name, "ort_ms": ort_ms, "untuned_ms": g_ms, "compile_s": compile_s}
        if args.tune_trials or args.tune_time:
            t0 = time.perf_counter()
            cmt = optimize(m, tune_trials=args.tune_trials, tune_time=args.tune_time, progress=True,
                           cache_dir=args.cache_dir)
            row["tune_s"] = time.perf_counter() - t0
            print(cmt.report.summary())
            print(cmt.report.tuning_table(12))
            row["tuned_ms"] = median_ms(lambda: cmt.run(**feeds), args.runs)
        if args.tvm_baseline:
            row["tvm_ms"], row["tvm_compile_s"] = bench_tvm_from_onnx(m, feeds, args.runs)
        rows.append(row)
        print(_fmt_row(row), flush=True)
        if args.profile:
            _profile(m, args.profile)
    print()
    print("| model | onnxruntime ms | graphopt untuned ms (x ort) | compile s | graphopt tuned ms (x ort) | tune s "
          "| TVM from_onnx ms (x ort) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        o = r["ort_ms"]
        tuned = f"{r['tuned_ms']:.1f} ({r['tuned_ms'] / o:.2f}x)" if "tuned_ms" in r else "-"
        tune_s = f"{r['tune_s']:.0f}" if "tune_s" in r else "-"
        tvm = f"{r['tvm_ms']:.0f} ({r['tvm_ms'] / o:.0f}x)" if "tvm_ms" in r else "-"
        print(f"| {r['model']} | {o:.1f} | {r['untuned_ms']:.1f} ({r['untuned_ms'] / o:.2f}x) | "
              f"{r['compile_s']:.1f} | {tuned} | {tune_s} | {tvm} |")


def _fmt_row(r):
    return "  ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items())


def _profile(model, top, level="O1"):
    """Print the kernels of ``model`` (an ONNX path or ModelProto) compiled at ``level`` that
    take the most time (each built alone and timed on random data, times its calls)."""
    import graphopt
    from graphopt.codegen.build import prepare, schedule
    from graphopt.codegen.kernels import tags
    from graphopt.codegen.lower import lower
    from graphopt.codegen.profile import profile_kernels
    from graphopt.codegen.target import Target
    from graphopt.pipeline import lowering_pipeline, run_passes

    target = Target.parse("cpu")
    tg = target.tvm
    g = run_passes(graphopt.import_onnx(model), lowering_pipeline(level))
    mod = schedule(prepare(lower(g, target=target).mod, tg), target)
    ks = profile_kernels(mod, tg)
    tot = sum(k.total_ms for k in ks) or 1.0
    by_kind: dict = {}
    for k in ks:
        kind = {tags.CONV2D: "conv", tags.DENSE: "dense", tags.ATTENTION: "attention"}.get(k.kind) or \
            ("pool" if "pool" in k.name else "other")
        by_kind[kind] = by_kind.get(kind, 0.0) + k.total_ms
    print(f"   kernel time in all: {tot:.1f} ms by kind: " + ", ".join(f"{k} {v / tot * 100:.0f}%" for k, v in
                                                 sorted(by_kind.items(), key=lambda kv: -kv[1])))
    for k in ks[:top]:
        print(f"   {k.name:45s} {k.kind or '-':6s} x{k.calls}  {k.ms:7.3f} ms  {k.total_ms / tot * 100:5.1f}%")


if __name__ == "__main__":
    sys.exit(main())
