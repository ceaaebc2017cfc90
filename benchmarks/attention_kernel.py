"""graphopt.Attention on CPU: the online-softmax kernel (codegen/kernels/attention.py) against
the in-place relax ops (matmul, softmax, matmul, which materialize the S x L scores), each
compiled by graphopt from a one-node graph, timed in this process with rounds interleaved;
peak memory of one call of each, in a fresh process per case and path (the artifact is
loaded there, so the compile's own memory does not hide the call's).

    .venv/bin/python -m benchmarks.attention_kernel [--rounds 11] [--no-memory] [--cases small,prefill,decode,gqa]

GRAPHOPT_CPU=x86-64-v3 forces AVX2 code on an AVX-512 host. Per case: median ms of each
path, the median per-round ratio (kernel / in-place), and the peak RSS increase of a call
(VmHWM, MB). These numbers set codegen/lower/attention.py's benefit rule (`use_kernel`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

# (name, B, Hq, Hkv, S, L, D, causal)
CASES = {
    "prefill": [(f"causal S=L={n}", 1, 12, 12, n, n, 64, True) for n in (128, 512, 2048)],
    "decode": [(f"decode L={n}", 1, 12, 12, 1, n, 64, False) for n in (128, 512, 2048)],
    "small": [(f"causal S=L={n}", 1, 12, 12, n, n, 64, True) for n in (16, 32, 64)]
    + [(f"decode L={n}", 1, 12, 12, 1, n, 64, False) for n in (16, 32, 64)],
    "gqa": [(f"GQA 16/4 decode L={n}", 1, 16, 4, 1, n, 64, False) for n in (128, 512, 2048)],
}


def graph(b, hq, hkv, s, length, d, causal):
    from graphopt.ir import DType, Graph, TensorType
    from graphopt.ir.function import DOMAIN
    from graphopt.ops import build

    g = Graph("attention", {"": 21, DOMAIN: 1})
    f = DType.FLOAT32
    q = g.add_input("q", TensorType(f, (b, hq, s, d)))
    k = g.add_input("k", TensorType(f, (b, hkv, length, d)))
    v = g.add_input("v", TensorType(f, (b, hkv, length, d)))
    g.outputs = [build(g, "Attention", [q, k, v], {"is_causal": int(causal)}, domain=DOMAIN).output]
    return g


def inputs(g, seed=0) -> dict:
    rng = np.random.default_rng(seed)
    return {v.name: rng.standard_normal(v.type.shape).astype(np.float32) for v in g.inputs}


def compiled(case, mode: str):
    import graphopt.codegen.lower.attention as la
    from graphopt.compiler import compile_model

    old = la.KERNEL_MODE
    la.KERNEL_MODE = mode
    try:
        return compile_model(graph(*case[1:]), opt_level=None)
    finally:
        la.KERNEL_MODE = old


def peak_mb(artifact: str, case) -> float:
    """The peak RSS increase (MB) of one call of the artifact, in a fresh process: VmHWM,
    the high-water mark of the process's own memory map (ru_maxrss would not do: Linux
    carries the parent's peak over fork and exec into it)."""
    code = (
        "import json, sys, graphopt\n"
        "from benchmarks.attention_kernel import graph, inputs, vm_hwm_kb\n"
        "case = json.loads(sys.argv[2])\n"
        "x = inputs(graph(*case[1:]))\n"
        "m = graphopt.load(sys.argv[1])\n"
        "r0 = vm_hwm_kb()\n"
        "m(**x)\n"
        "print((vm_hwm_kb() - r0) / 1024)\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", code, artifact, json.dumps(case)], cwd=root, check=True,
                         capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def vm_hwm_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def measure(case, rounds: int, memory: bool) -> dict:
    from tests.ops.test_attention import numpy_attention

    x = inputs(graph(*case[1:]))
    kern, plain = compiled(case, "always"), compiled(case, "never")
    if "gattn" not in kern.report.kernel_names or "gattn" in plain.report.kernel_names:
        raise RuntimeError(f"{case[0]}: the paths did not build as asked: {kern.report.kernel_names}, "
                           f"{plain.report.kernel_names}")
    want = numpy_attention(x["q"], x["k"], x["v"], is_causal=int(case[-1]))
    for m in (kern, plain):
        np.testing.assert_allclose(m(**x), want, rtol=1e-4, atol=1e-5)
    per_round = max(1, int(0.05 / max(_once(kern, x), _once(plain, x), 1e-6)))
    tk, tp = [], []
    for _ in range(rounds):
        for m, acc in ((kern, tk), (plain, tp)):
            t0 = time.perf_counter()
            for _ in range(per_round):
                m(**x)
            acc.append((time.perf_counter() - t0) / per_round * 1e3)
    res = {"case": case[0], "kernel_ms": statistics.median(tk), "inplace_ms": statistics.median(tp),
           "ratio": statistics.median([a / b for a, b in zip(tk, tp)])}
    if memory:
        with tempfile.TemporaryDirectory() as tmp:
            for m, key in ((kern, "kernel_mb"), (plain, "inplace_mb")):
                path = os.path.join(tmp, key)
                m.save(path)
                res[key] = peak_mb(path, list(case))
    return res


def _once(m, x) -> float:
    m(**x)
    t0 = time.perf_counter()
    m(**x)
    return time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=11)
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--cases", default="small,prefill,decode,gqa")
    a = ap.parse_args(argv)
    from graphopt.codegen.target import host_cpu

    cpu = host_cpu()
    print(f"cpu {cpu.mcpu}, {cpu.vector_lanes} float32 lanes, {cpu.cores} cores; "
          f"GRAPHOPT_CPU={os.environ.get('GRAPHOPT_CPU', '')!r}")
    for group in a.cases.split(","):
        for case in CASES[group]:
            r = measure(case, a.rounds, not a.no_memory)
            mem = (f", peak +{r['kernel_mb']:.1f} MB vs +{r['inplace_mb']:.1f} MB"
                   if "kernel_mb" in r else "")
            print(f"{r['case']:>24}: kernel {r['kernel_ms']:.3f} ms, in-place {r['inplace_ms']:.3f} ms, "
                  f"ratio {r['ratio']:.2f}{mem}; load {os.getloadavg()[0]:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
