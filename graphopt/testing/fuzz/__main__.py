"""python -m graphopt.testing.fuzz [--full] [--json PATH] [--only REGEX] [--jobs N]"""

from __future__ import annotations

import argparse
import sys
import time

from . import campaign, report
from .outcome import PASSING


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m graphopt.testing.fuzz",
                                description="graphopt's bad-input and fault campaign: run the cases, classify each, "
                                            "print a table and the failing cases; exit 1 if any case fails.")
    p.add_argument("--full", action="store_true", help="every case (default: the fast fixed-seed sample)")
    p.add_argument("--json", metavar="PATH", help="also write every case's result as JSON")
    p.add_argument("--only", metavar="REGEX", help="only the cases whose id matches")
    p.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    p.add_argument("--quiet", action="store_true", help="no line per case")
    p.add_argument("--keep", action="store_true", help="keep the temp folder (to look at what a case left)")
    args = p.parse_args(argv)
    t0 = time.monotonic()
    results = campaign.run(args.full, args.only, args.jobs, progress=not args.quiet, keep=args.keep)
    print(report.table(results))
    print()
    print(report.failures(results))
    print(f"\n{len(results)} cases in {time.monotonic() - t0:.0f} s: {report.summary(results)}")
    if args.json:
        report.write_json(results, args.json)
    return 0 if results and all(r.category in PASSING for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
