"""`graphopt bench MODEL.onnx`: graphopt against its peers on one model, as the benchmark
suite does it (each system in its own process, interleaved rounds)."""

from __future__ import annotations

import sys

DEFAULT_SYSTEMS = ["graphopt", "graphopt-tuned", "onnxruntime", "openvino", "tvm-from_onnx"]


def add_parser(sub) -> None:
    p = sub.add_parser(
        "bench", help="time graphopt against onnxruntime, OpenVINO and TVM on one ONNX model",
        description="Compare graphopt (untuned, and tuned under --tune-minutes) with onnxruntime (all "
                    "optimizations), OpenVINO (if installed) and TVM's own from_onnx on MODEL: median and spread "
                    "of latency, ratio to onnxruntime, compile time, peak memory, error against the oracle and "
                    "GFLOP/s against the machine's measured matmul peak. Each system runs in its own process; "
                    "timing rounds are interleaved. Prints a markdown table.")
    p.add_argument("model", help="an .onnx file")
    p.add_argument("--rounds", type=int, default=20, help="timed rounds (default 20)")
    p.add_argument("--tune-minutes", type=float, default=0.0,
                   help="tuning budget for graphopt-tuned, in minutes (default 0: not run)")
    p.add_argument("--systems", default=None,
                   help="comma-separated subset of " + ", ".join(DEFAULT_SYSTEMS) + " (aliases: ort, tvm, ov, tuned)")
    p.add_argument("--inputs", default=None, metavar="FILE.npz",
                   help="inputs by input name (default: random data of the model's input shapes)")
    p.add_argument("--threads", type=int, default=None, help="threads for every system (default: all cores)")
    p.add_argument("--opt-level", default="O1", help="graphopt's pipeline (default O1)")
    p.add_argument("--tvm-cap", type=float, default=30.0,
                   help="seconds of timing for TVM's from_onnx, which is untuned and slow (default 30)")
    p.add_argument("--no-peak", action="store_true", help="skip measuring the machine's matmul peak")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="also write bench.md, bench.json and bench.png (the ratio chart) into DIR")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=run)


def run(args) -> int:
    import shutil
    import tempfile
    from pathlib import Path

    from ..bench.cases import onnx_file_case
    from ..bench.runner import Settings, report_markdown, run_suite, write_outputs
    from ..bench.systems import canonical
    from ..errors import GraphoptError

    path = Path(args.model)
    if not path.is_file():
        raise GraphoptError(f"{args.model}: no such file")
    if args.inputs and not Path(args.inputs).is_file():
        raise GraphoptError(f"--inputs {args.inputs}: no such file")
    if args.rounds < 1:
        raise GraphoptError("--rounds must be at least 1")
    systems = args.systems.split(",") if args.systems else [
        s for s in DEFAULT_SYSTEMS if s != "graphopt-tuned" or args.tune_minutes > 0]
    try:
        systems = [canonical(s) for s in systems]
    except ValueError as e:
        raise GraphoptError(str(e)) from None
    bad = [s for s in systems if s.startswith("torch")]
    if bad:
        raise GraphoptError(f"{', '.join(bad)}: torch systems need a torch module; `graphopt bench` takes ONNX "
                            "(use benchmarks/suite.py for the torch models)")
    if "graphopt-tuned" in systems and args.tune_minutes <= 0:
        raise GraphoptError("graphopt-tuned needs a budget: --tune-minutes M")
    settings = Settings(rounds=args.rounds, tune_minutes=args.tune_minutes, opt_level=args.opt_level,
                        slow_cap_s=args.tvm_cap, peak=not args.no_peak)
    if args.threads:
        settings.threads = args.threads
    workdir = tempfile.mkdtemp(prefix="graphopt-bench-")
    settings.workdir = workdir
    log = (lambda m: None) if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    try:
        try:
            case = onnx_file_case(path, Path(workdir) / "cases", inputs=args.inputs)
        except GraphoptError:
            raise
        except Exception as e:
            raise GraphoptError(f"{args.model}: cannot prepare the model: {type(e).__name__}: {e}") from None
        command = _command(args)
        entries, meta = run_suite([case], systems, settings, log=log, command=command)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    sys.stdout.write(report_markdown(entries, meta))
    if args.out:
        paths = write_outputs(args.out, entries, meta, stem="bench")
        log("wrote " + ", ".join(p for p in paths.values() if p))
    return 0


def _command(args) -> str:
    """The command line, rebuilt from the parsed options (for the report's header)."""
    import shlex

    parts = ["graphopt", "bench", shlex.quote(args.model), "--rounds", str(args.rounds)]
    if args.tune_minutes:
        parts += ["--tune-minutes", f"{args.tune_minutes:g}"]
    for opt, default in (("systems", None), ("inputs", None), ("threads", None), ("opt_level", "O1"),
                         ("tvm_cap", 30.0)):
        v = getattr(args, opt)
        if v != default:
            parts += ["--" + opt.replace("_", "-"), shlex.quote(f"{v:g}" if isinstance(v, float) else str(v))]
    if args.no_peak:
        parts.append("--no-peak")
    return " ".join(parts)
