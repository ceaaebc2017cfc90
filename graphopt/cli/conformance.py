"""`graphopt conformance`: onnx's node test suite through every graphopt stage."""

from __future__ import annotations

import json
import sys


def add_parser(sub) -> None:
    p = sub.add_parser("conformance", help="run onnx's node test suite through graphopt's stages",
                       description="Run onnx's own node test cases (built in memory) through each stage "
                                   "and classify every case: pass, mismatch, unsupported or crash.")
    p.add_argument("--only", metavar="REGEX", help="run only the cases whose name matches REGEX")
    p.add_argument("--stage", default="ort,O0,O1,tvm",
                   help="comma-separated stages among ort, O0, O1, tvm (default: all)")
    p.add_argument("--json", metavar="PATH", help="write the full report as JSON")
    p.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per case and stage (default 120)")
    p.add_argument("--failures", type=int, default=40, help="failure groups to print (default 40)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..conformance.runner import format_failures_by_op, format_summary, run_conformance
    from ..conformance.stages import STAGES
    from ..errors import GraphoptError
    from ..util.files import atomic_write_text

    stages = [s.strip() for s in args.stage.split(",") if s.strip()]
    bad = [s for s in stages if s not in STAGES]
    if bad:
        raise GraphoptError(f"unknown stage(s) {', '.join(bad)}; choose from {', '.join(STAGES)}")
    last = [0.0]

    def progress(done: int, total: int) -> None:
        import time

        now = time.monotonic()
        if sys.stderr.isatty() and (now - last[0] > 0.5 or done == total):
            last[0] = now
            sys.stderr.write(f"\r{done}/{total} case-stages")
            if done == total:
                sys.stderr.write("\n")
            sys.stderr.flush()

    try:
        report = run_conformance(args.only, stages, workers=args.workers, timeout=args.timeout, progress=progress)
    except RuntimeError as e:
        raise GraphoptError(str(e)) from None
    print(format_summary(report))
    failures = format_failures_by_op(report, args.failures)
    if failures:
        print("\nmismatches and crashes by op (stage, status, ops: count):")
        print(failures)
    if args.json:
        atomic_write_text(args.json, json.dumps(report.to_json(), indent=1) + "\n")
        print(f"\nwrote {args.json}")
    return 0
