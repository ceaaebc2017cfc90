"""Per-call overhead: graphopt against onnxruntime on models whose kernels cost almost
nothing, so the time is what each runtime spends around them (argument checks, conversions,
the call into native code, output allocation).

    .venv/bin/python -m benchmarks.overhead [--rounds 15] [--calls 2000] [--threads default]

Models: a one-node Relu on 16 float32 elements, and the shipped examples/tiny_cnn.onnx.
Both systems run in this process, one thread each, rounds interleaved (graphopt, then
onnxruntime, then graphopt...); each round times ``--calls`` calls and the table gives the
median over rounds of the per-call microseconds, and graphopt's ratio to onnxruntime.
``--threads default`` leaves both with their own thread pools instead (TVM_NUM_THREADS
unset, onnxruntime's intra-op threads 0), which shows what waking a pool costs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def relu_model():
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [16])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [16])
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="relu")], "relu16", [x], [y])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)])


def tiny_cnn_model():
    import onnx

    return onnx.load(str(ROOT / "examples" / "tiny_cnn.onnx"))


def _inputs(model) -> dict:
    from onnx import helper

    rng = np.random.default_rng(0)
    feeds = {}
    inits = {i.name for i in model.graph.initializer}
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        shape = [d.dim_value or 1 for d in vi.type.tensor_type.shape.dim]
        dt = helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type)
        feeds[vi.name] = rng.standard_normal(shape).astype(dt)
    return feeds


def _time(fn, calls: int) -> float:
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) / calls * 1e6


def measure(name: str, model, rounds: int, calls: int, ort_threads: int = 1) -> dict:
    import onnxruntime as ort

    import graphopt

    feeds = _inputs(model)
    compiled = graphopt.optimize(model.SerializeToString())
    so = ort.SessionOptions()
    so.intra_op_num_threads = ort_threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    args = list(feeds.values())
    want = sess.run(None, feeds)
    got = compiled(*args)
    got = got if isinstance(got, (list, tuple)) else [got]
    for w, g in zip(want, got):
        np.testing.assert_allclose(np.asarray(g), w, rtol=1e-4, atol=1e-5)

    def go():
        return compiled(*args)

    def ort_run():
        return sess.run(None, feeds)

    go_us, ort_us = [], []
    for _ in range(3):
        go(), ort_run()
    for _ in range(rounds):
        go_us.append(_time(go, calls))
        ort_us.append(_time(ort_run, calls))
    g, o = statistics.median(go_us), statistics.median(ort_us)
    return {"model": name, "graphopt_us": g, "onnxruntime_us": o, "ratio": g / o}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--threads", choices=["1", "default"], default="1",
                    help="1: one thread each (the default); default: each system's own thread pool")
    a = ap.parse_args(argv)
    if a.threads == "1":
        # One thread for both, so neither spends its time waking a pool for a 16-element kernel.
        os.environ.setdefault("TVM_NUM_THREADS", "1")
    ort_threads = 1 if a.threads == "1" else 0
    rows = [measure("relu-16", relu_model(), a.rounds, a.calls, ort_threads),
            measure("tiny_cnn", tiny_cnn_model(), a.rounds, max(1, a.calls // 4), ort_threads)]
    threads = "one each" if a.threads == "1" else f"default (TVM_NUM_THREADS={os.environ.get('TVM_NUM_THREADS', 'unset')})"
    print(f"load average: {os.getloadavg()[0]:.2f}  rounds: {a.rounds}  threads: {threads}  "
          "(median per-call microseconds)")
    print(f"{'model':<10} {'graphopt':>10} {'onnxruntime':>12} {'ratio':>7}")
    for r in rows:
        print(f"{r['model']:<10} {r['graphopt_us']:>10.1f} {r['onnxruntime_us']:>12.1f} {r['ratio']:>7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
