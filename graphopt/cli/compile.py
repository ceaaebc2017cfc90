"""`graphopt compile MODEL -o OUT`: compile a model into an artifact folder; with
``--report report.json``, the fusion report too (`graphopt.pipeline.report`, with the
built kernels), written atomically after the artifact."""

from __future__ import annotations

import sys

from .opt import add_report_arg, add_shape_args, report_path, shape_args, write_report


def add_parser(sub) -> None:
    p = sub.add_parser("compile", help="compile a model to a deployable artifact folder",
                       description="Compile MODEL (.onnx) for a target and write an artifact folder: the compiled "
                                   "library, the parameters and a manifest.")
    p.add_argument("model", help="an .onnx file")
    p.add_argument("-o", "--output", required=True,
                   help="the artifact folder to write (an earlier artifact there is replaced atomically; a folder "
                        "that is not an artifact, or a file, is refused; temporary folders a killed earlier "
                        "compile left next to it are removed)")
    p.add_argument("--target", default="cpu",
                   help="cpu (LLVM, host CPU), cuda (this machine's GPU) or cuda:sm_XX (compile for that GPU "
                        "architecture, e.g. cuda:sm_90 for an H100, without one)")
    p.add_argument("--tune-trials", type=int, default=0, metavar="N", help="tune with MetaSchedule for N trials")
    p.add_argument("--tune-time", type=float, default=None, metavar="MIN", help="tune for at most MIN minutes")
    p.add_argument("--fallback", choices=["none", "ort"], default="none",
                   help="run ops graphopt cannot lower on onnxruntime")
    p.add_argument("-O", "--opt-level", default="O2", help="graphopt pass pipeline to run first (default O2)")
    p.add_argument("--cache-dir", default=None,
                   help="tuning database folder (default $GRAPHOPT_CACHE_DIR, else ~/.cache/graphopt/tuning)")
    p.add_argument("--explain", nargs="?", const=True, default=False, metavar="PATTERN",
                   help="print, per rule of the compile's passes, where it applied and why it did not at candidate "
                        "sites; with PATTERN, only the rules whose name contains it (and --report narrowed to them)")
    add_shape_args(p)
    add_report_arg(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..compiler import compile_model
    from ..errors import GraphoptError

    if args.tune_trials < 0:
        raise GraphoptError("--tune-trials must be >= 0")
    if args.tune_time is not None and args.tune_time <= 0:
        raise GraphoptError("--tune-time must be > 0 minutes")
    report = report_path(args)
    shapes, dims = shape_args(args)
    model = compile_model(args.model, shapes=shapes, dims=dims, target=args.target, tune_trials=args.tune_trials, tune_time=args.tune_time,
                          fallback=None if args.fallback == "none" else args.fallback, opt_level=args.opt_level,
                          cache_dir=args.cache_dir, progress=True,
                          explain=args.explain,
                          fusion_report=(args.explain if isinstance(args.explain, str) else True) if report else False)
    out = model.save(args.output)
    if report is not None:
        write_report(report, model.report.fusion, str(args.model))
    print(f"wrote {out}: {model.report.summary()}")
    if model.report.tuning:
        print(model.report.tuning_table())
    return 0
