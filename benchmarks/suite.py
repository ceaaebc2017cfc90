"""The benchmark suite: graphopt against its peers on the light CNNs from the onnx wheel, an
MLP, BERT-base (seq 128), GPT-2 small prefill (seq 128) and one GPT-2 decode step (128 past
tokens), in one run; every system in its own process, timing rounds interleaved.

    .venv/bin/python -m benchmarks.suite [--models a,b] [--systems x,y] [--rounds N]
                                         [--tune-minutes M] [--out benchmarks/results] [--readme README.md]

Writes OUT/latest.md (the table, with date, machine and command), OUT/latest.json and
OUT/latest.png (each system's latency ratio to onnxruntime). Systems: graphopt (untuned;
tuned with --tune-minutes > 0), onnxruntime (all optimizations), OpenVINO (if installed),
TVM's own from_onnx (untuned, time-capped), torch eager and torch.compile (torch models).
Models from transformers configs with random weights: nothing is downloaded. The machinery
lives in graphopt.bench (shared with `graphopt bench MODEL.onnx`).
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # python benchmarks/suite.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from graphopt.bench.cases import LLM, SUITE_MODELS  # noqa: E402
from graphopt.bench.runner import Settings, load_results, resolve_systems, run_suite, write_outputs  # noqa: E402
from graphopt.bench.systems import SYSTEMS  # noqa: E402

README_BEGIN = "<!-- benchmark-table:begin -->"
README_END = "<!-- benchmark-table:end -->"


def update_readme(path: Path, text: str) -> bool:
    """Replace what lies between the README's benchmark markers with ``text``."""
    src = path.read_text()
    pat = re.compile(re.escape(README_BEGIN) + r".*?" + re.escape(README_END), re.S)
    if not pat.search(src):
        return False
    path.write_text(pat.sub(lambda _: f"{README_BEGIN}\n{text.rstrip()}\n{README_END}", src))
    return True


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=",".join(SUITE_MODELS),
                    help="comma-separated: " + ", ".join(SUITE_MODELS + LLM) + ", or .onnx paths (default: all but "
                         + ", ".join(LLM) + ")")
    ap.add_argument("--systems", default=None,
                    help="comma-separated: " + ", ".join(SYSTEMS) + " (default: all; graphopt-tuned only "
                         "with --tune-minutes)")
    ap.add_argument("--rounds", type=int, default=20, help="timed rounds per model (default 20)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed rounds first (default 2)")
    ap.add_argument("--tune-minutes", type=float, default=0.0,
                    help="graphopt-tuned's tuning budget per model, minutes (default 0: not run)")
    ap.add_argument("--tune-cache", default=None,
                    help="tuning database folder to reuse (default: a fresh one, so the budget is the whole cost)")
    ap.add_argument("--threads", type=int, default=None, help="threads for every system (default: all cores)")
    ap.add_argument("--cap", type=float, default=120.0, help="seconds of timing per system and model (default 120)")
    ap.add_argument("--tvm-cap", type=float, default=30.0,
                    help="seconds of timing for TVM's from_onnx per model (default 30)")
    ap.add_argument("--small", action="store_true", help="toy sizes of the torch models (a quick check)")
    ap.add_argument("--no-peak", action="store_true", help="skip measuring the machine's matmul peak")
    ap.add_argument("--out", default="benchmarks/results", help="output folder (default benchmarks/results)")
    ap.add_argument("--readme", default=None, metavar="README.md",
                    help=f"also put the table into this file, between the lines {README_BEGIN} and {README_END}")
    ap.add_argument("--render", nargs="+", default=None, metavar="JSON",
                    help="measure nothing: redraw the table and chart from these JSON results (merged)")
    ap.add_argument("--keep-workdir", default=None, metavar="DIR",
                    help="keep the prepared models and the workers' logs in DIR")
    args = ap.parse_args(argv)

    settings = Settings(rounds=args.rounds, warmup=args.warmup, tune_minutes=args.tune_minutes,
                        tune_cache=args.tune_cache, cap_s=args.cap, slow_cap_s=args.tvm_cap, small=args.small,
                        peak=not args.no_peak)
    if args.threads:
        settings.threads = args.threads
    if args.keep_workdir:
        settings.workdir = args.keep_workdir
        settings.keep_workdir = True
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    systems = [s for s in args.systems.split(",") if s.strip()] if args.systems else None
    try:
        resolve_systems(systems, settings)
    except ValueError as e:
        ap.error(str(e))
    command = "python -m benchmarks.suite " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    t0 = time.perf_counter()
    if args.render:
        entries, meta = load_results(args.render)
    else:
        entries, meta = run_suite(models, systems, settings, command=command.strip())
    paths = write_outputs(args.out, entries, meta)
    text = Path(paths["md"]).read_text()
    print()
    print(text)
    print(f"wrote {', '.join(p for p in paths.values() if p)} in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    if paths["png"] is None:
        print("matplotlib is not installed: no chart (pip install 'graphopt[bench]')", file=sys.stderr)
    if args.readme:
        if not update_readme(Path(args.readme), text):
            print(f"{args.readme}: no {README_BEGIN} ... {README_END} markers; README left as it was",
                  file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
