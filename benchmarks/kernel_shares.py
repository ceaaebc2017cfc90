"""Which kernels hold a model back: each kernel of its -O2 compile built alone, timed on
random data and weighted by its calls, with its share of the summed kernel time.

    .venv/bin/python -m benchmarks.kernel_shares MODEL.onnx [MODEL.onnx ...] [--top 12] [--level O2]

The suite's transformer models are written as ONNX by ``benchmarks.suite --keep-workdir DIR``
(DIR/cases/*.onnx). Kernels run serially here, one at a time, on 2 threads as the suite
does (TVM_NUM_THREADS); shares, not absolute times, are what to read.
"""

from __future__ import annotations

import argparse
import os
import sys


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", help="ONNX files")
    ap.add_argument("--top", type=int, default=12)
    ap.add_argument("--level", default="O2")
    args = ap.parse_args(argv)
    os.environ.setdefault("TVM_NUM_THREADS", "2")
    from benchmarks.lowering import _profile

    for m in args.models:
        print(f"== {m} ({args.level})")
        _profile(m, args.top, args.level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
