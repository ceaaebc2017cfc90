"""What one pass does to the speed of a compiled model: the suite's models compiled with -O2
and with -O2 minus the pass (``--without``), or with -O2 and the pass run after it
(``--with``, for a pass not in -O2 yet), both in this process, rounds interleaved.

    .venv/bin/python -m benchmarks.pass_ab --without fuse-gelu [--models gpt2-decode,gpt2] [--rounds 15]
    .venv/bin/python -m benchmarks.pass_ab --with group-kernels --models bert,gpt2-decode,gpt2 --rounds 8

Prints, per model, the largest difference between the two compiled models' outputs, the
median milliseconds per call of each, the median of the per-round ratios (with / without)
and the load average.
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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    which = ap.add_mutually_exclusive_group(required=True)
    which.add_argument("--without", help="the pass to leave out of -O2 for the second build")
    which.add_argument("--with", dest="with_", metavar="PASS",
                       help="the pass (a pipeline spec) to run after -O2 for the first build")
    ap.add_argument("--models", default="gpt2-decode,gpt2", help="the suite's model names (benchmarks.suite)")
    ap.add_argument("--rounds", type=int, default=15)
    a = ap.parse_args(argv)

    from graphopt.bench.cases import load_arrays, suite_case
    from graphopt.compiler import compile_model
    from graphopt.pipeline import build_pipeline

    with tempfile.TemporaryDirectory() as tmp:
        for name in a.models.split(","):
            case = suite_case(name, Path(tmp))
            arrays = load_arrays(case.inputs)
            if a.with_:
                with_ = compile_model(case.onnx, opt_level=build_pipeline("O2") + build_pipeline(a.with_))
                without = compile_model(case.onnx, opt_level="O2")
            else:
                with_ = compile_model(case.onnx, opt_level="O2")
                without = compile_model(case.onnx, opt_level=build_pipeline("O2", disable=[a.without]))
            diff = max(float(np.abs(p - q).max()) for p, q in zip(with_.run(*arrays), without.run(*arrays)))
            tw, to = [], []
            for _ in range(a.rounds):
                for model, acc in ((with_, tw), (without, to)):
                    t0 = time.perf_counter()
                    model.run(*arrays)
                    acc.append((time.perf_counter() - t0) * 1e3)
            ratio = statistics.median([x / y for x, y in zip(tw, to)])
            first, second = (f"-O2 + {a.with_}", "-O2") if a.with_ else ("-O2", f"without {a.without}")
            print(f"{case.name}: max diff {diff:.2e}; {first} {statistics.median(tw):.2f} ms ({with_.report.kernels} "
                  f"kernels), {second} {statistics.median(to):.2f} ms ({without.report.kernels} kernels); "
                  f"ratio {ratio:.3f}; load {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
