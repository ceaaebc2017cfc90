"""Normalizations fused (graphopt.RMSNorm, one kernel; LayerNormalization) against their
decomposed forms (the ops exporters spell out), compiled by graphopt, in this process,
rounds interleaved.

    .venv/bin/python -m benchmarks.norms [--rounds 11]

Per norm and row shape: median microseconds per call of each and the median per-round ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

SHAPES = [(1, 1024), (128, 1024), (512, 4096)]


def decomposed(shape, norm: str):
    """RMS: x * (1 / sqrt(mean(x^2, -1) + eps)) * w, as torch.onnx exports LlamaRMSNorm;
    layer: (x - mean) / sqrt(mean((x - mean)^2) + eps) * w + b, as pre-opset-17 exports."""
    from graphopt.ir import DType, Graph, TensorData, TensorType
    from graphopt.ops import build

    g = Graph(norm, {"": 21})
    x = g.add_input("x", TensorType(DType.FLOAT32, shape))

    def c(a, dt=np.float32):
        return g.add_constant(g.fresh_name("c"), TensorData.from_numpy(np.asarray(a, dt)))

    axes = c([-1], np.int64)
    d = x if norm == "rms" else build(g, "Sub", [x, build(g, "ReduceMean", [x, axes], {"keepdims": 1}).output]).output
    sq = build(g, "Pow", [d, c(2.0)]).output
    mean = build(g, "ReduceMean", [sq, axes], {"keepdims": 1}).output
    r = build(g, "Reciprocal", [build(g, "Sqrt", [build(g, "Add", [mean, c(1e-6)]).output]).output]).output
    y = build(g, "Mul", [d, r]).output
    rng = np.random.default_rng(0)
    y = build(g, "Mul", [y, c(rng.uniform(0.5, 1.5, shape[-1]))]).output
    if norm == "layer":
        y = build(g, "Add", [y, c(rng.standard_normal(shape[-1]))]).output
    g.outputs = [y]
    return g


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=11)
    a = ap.parse_args(argv)
    from graphopt.compiler import compile_model

    for norm, fuse, name in (("rms", "fuse-rms-norm", "RMSNorm"), ("layer", "fuse-layer-norm", "LayerNorm")):
        for shape in SHAPES:
            _measure(compile_model, norm, fuse, name, shape, a.rounds)
    return 0


def _measure(compile_model, norm: str, fuse: str, name: str, shape, rounds: int) -> None:
    g = decomposed(shape, norm)
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    fused = compile_model(g, opt_level=f"{fuse},dce")
    plain = compile_model(g, opt_level="dce")
    np.testing.assert_allclose(fused(x), plain(x), rtol=1e-4, atol=1e-5)
    calls = 20 if shape[0] * shape[1] > 1 << 20 else 200
    tf, tp = [], []
    for _ in range(rounds):
        for model, acc in ((fused, tf), (plain, tp)):
            t0 = time.perf_counter()
            for _ in range(calls):
                model(x)
            acc.append((time.perf_counter() - t0) / calls * 1e6)
    print(f"{list(shape)}: {name} {statistics.median(tf):.1f} us, decomposed {statistics.median(tp):.1f} us, "
          f"ratio {statistics.median([p / q for p, q in zip(tf, tp)]):.2f}; load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    sys.exit(main())
