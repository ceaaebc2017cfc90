"""`graphopt opt MODEL -O1 -o OUT.onnx`: run passes, graph to graph (like LLVM's opt).

No code generation: the result is written as .onnx, or as .ir text (``-o out.ir``); with
no ``-o`` the text form goes to stdout. Errors are one line naming the pass and the file;
the output file is written atomically, so a failure never leaves a partial one.
``--report report.json`` writes the fusion report (`graphopt.pipeline.report`) the same way
and prints its summary on stderr; ``graphopt compile --report`` shares its helpers here.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional


def add_pipeline_args(p) -> None:
    """Pipeline selection arguments shared by `opt` and `bisect`."""
    lvl = p.add_mutually_exclusive_group()
    lvl.add_argument("-O0", dest="level", action="store_const", const="O0", help="no passes (import/export only)")
    lvl.add_argument("-O1", dest="level", action="store_const", const="O1",
                     help="cleanup: simplify, fold-constants, cse, dce to a fixpoint (the default)")
    lvl.add_argument("-O2", dest="level", action="store_const", const="O2",
                     help="-O1, then fuse-conv-bn (folds BatchNorm and per-channel affine ops into conv "
                          "weights; rounds within float tolerance), then -O1 again")
    lvl.add_argument("--passes", metavar="A,B,C",
                     help="run these passes in order instead of a -O level, e.g. 'fold-constants{max-elements=4096},dce' "
                          "or 'fixpoint(simplify,dce)' (see `graphopt passes`)")
    p.add_argument("--disable-pass", action="append", default=[], metavar="NAME",
                   help="drop a pass from the pipeline (repeatable)")
    p.add_argument("--pass-option", action="append", default=[], metavar="PASS.OPTION=VALUE",
                   help="set a pass option in the pipeline, e.g. fold-constants.max-elements=4096 (repeatable)")
    p.add_argument("--inputs", metavar="FILE.npz", help="inputs for numeric checks, by graph input name")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs for numeric checks (default 0)")


def pipeline_from_args(args):
    from ..pipeline import PassOptionError

    pipeline = args.passes if args.passes else (args.level or "O1")
    options: dict[str, dict[str, str]] = {}
    for spec in args.pass_option:
        if "=" not in spec or "." not in spec.split("=", 1)[0]:
            raise PassOptionError(f"bad --pass-option {spec!r}: use PASS.OPTION=VALUE")
        key, val = spec.split("=", 1)
        pname, opt = key.split(".", 1)
        options.setdefault(pname, {})[opt] = val
    return pipeline, options


def add_shape_args(p) -> None:
    """--shape / --dim, shared by `opt` and `compile`."""
    p.add_argument("--shape", action="append", default=[], metavar="INPUT=DIMS",
                   help="compile for this static shape of an input, e.g. input_ids=1x128 (repeatable); "
                        "specialize-shapes binds it before the -O pipeline")
    p.add_argument("--dim", action="append", default=[], metavar="NAME=SIZE",
                   help="size a symbolic dim of the model's inputs, e.g. seq=128 (repeatable)")


def shape_args(args) -> tuple[dict, dict]:
    """(shapes by input name, sizes by dim name) from --shape and --dim."""
    from ..errors import ShapeBindingError
    from ..ir.binding import parse_assignments, parse_shape

    shapes = {k: parse_shape(v, f"--shape {k}") for k, v in parse_assignments(args.shape, "--shape").items()}
    dims = {}
    for k, v in parse_assignments(args.dim, "--dim").items():
        try:
            dims[k] = int(v)
        except ValueError:
            raise ShapeBindingError(f"--dim {k}: size {v!r} is not an integer") from None
    return shapes, dims


def add_report_arg(p) -> None:
    p.add_argument("--report", metavar="FILE.json",
                   help="write the fusion report: per pattern how many times it applied, each fused node with the "
                        "source nodes it came from, the near misses with their reasons (--explain PATTERN narrows it)")


def report_path(args) -> Optional[Path]:
    """The --report path, checked before any work (a folder, or a missing parent, fails now)."""
    from ..errors import OutputPathError

    if not getattr(args, "report", None):
        return None
    path = Path(args.report)
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise OutputPathError(f"{path}: --report is a directory")
    if not parent.is_dir():
        raise OutputPathError(f"{path}: cannot write the report: folder {parent} does not exist")
    return path


def explain_arg(args, report: Optional[Path]):
    """What run_pipeline's ``explain`` gets: --explain as given; for --report alone, a sink
    (the explain log is recorded, not printed)."""
    if args.explain or report is None:
        return args.explain
    import io

    return io.StringIO()


def write_report(path: Path, report: dict, model: str) -> None:
    """The report (of ``model``, the path given) as JSON, written atomically; its summary
    on stderr."""
    import json

    from ..pipeline.report import summary
    from ..util.files import atomic_write_text

    atomic_write_text(path, json.dumps({"model": model, **report}, indent=1) + "\n")
    print(summary(report), file=sys.stderr)
    print(f"fusion report written to {path}", file=sys.stderr)


def load_inputs(path):
    if path is None:
        return None
    import numpy as np

    from ..errors import GraphoptError

    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise GraphoptError(f"{path}: cannot read the inputs (an .npz file by input name): {e}") from None


def add_parser(sub) -> None:
    p = sub.add_parser("opt", help="run passes on a model, graph to graph (no code generation)",
                       description="Import MODEL, run a pipeline of passes, write the result.")
    p.add_argument("model", help="an .onnx file, or an .ir file in graphopt's text form")
    p.add_argument("-o", "--output", metavar="OUT", help="output file: .onnx, or .ir for the text form (default: text to stdout)")
    add_pipeline_args(p)
    p.add_argument("--verify-each", action="store_true", help="run the verifier after every pass")
    p.add_argument("--time-passes", action="store_true", help="print a table of time per pass and nodes before/after")
    p.add_argument("--check-numerics", action="store_true",
                   help="after every pass that changes the graph, compare the oracle's outputs with the imported graph's")
    p.add_argument("--dump-ir", metavar="WHEN",
                   help="dump the IR: 'after-all', 'after-change', or after the named passes (comma-separated)")
    p.add_argument("--dump-format", default="ir", metavar="FMT",
                   help="dump formats, comma-separated: ir (text, parses back), onnx (Netron), dot (Graphviz); 'all'")
    p.add_argument("--dump-dir", metavar="DIR", help="folder for the numbered dumps (default: OUT's stem + '.dumps' next to OUT)")
    p.add_argument("--dump-full-constants", action="store_true", help="text dumps carry every constant's data")
    p.add_argument("--print-after-all", action="store_true", help="print the IR to stderr after every pass")
    p.add_argument("--bisect-limit", type=int, metavar="N", help="apply at most N rewrites (counted across passes)")
    p.add_argument("--explain", nargs="?", const=True, default=False, metavar="PATTERN",
                   help="print, per rule, where it applied and why it did not at candidate sites; with PATTERN, "
                        "only the rules whose name contains it (e.g. fuse-gelu, rms-norm.scale)")
    p.add_argument("--stats", action="store_true", help="print node and constant counts before and after")
    add_shape_args(p)
    add_report_arg(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..ir.binding import shape_binding
    from ..errors import GraphoptError
    from ..io import load_graph, save_graph
    from ..ir.printer import print_ir
    from ..pipeline import run_pipeline

    pipeline, options = pipeline_from_args(args)
    out = Path(args.output) if args.output else None
    if out is not None and out.suffix not in (".onnx", ".ir"):
        raise GraphoptError(f"{out}: unknown output format (use .onnx or .ir)")
    dump_dir = None
    if args.dump_ir:
        if args.dump_dir:
            dump_dir = Path(args.dump_dir)
        elif out is not None:
            dump_dir = out.with_name(out.stem + ".dumps")
        else:
            dump_dir = Path(Path(args.model).stem + ".dumps")
    formats = ["ir", "onnx", "dot"] if args.dump_format == "all" else [f.strip() for f in args.dump_format.split(",") if f.strip()]
    when = args.dump_ir
    if when and when not in ("after-all", "after-change"):
        when = [w.strip() for w in when.split(",") if w.strip()]
    report = report_path(args)
    g = load_graph(args.model)
    shapes, dims = shape_args(args)
    binding = shape_binding(g, shapes, dims, where=str(args.model)) if (shapes or dims) else {}
    if binding:
        from ..pipeline import build_pipeline
        from ..pipeline.pipelines import specialize_pipeline

        # First, so that every pass of the pipeline sees the static shapes.
        pipeline = specialize_pipeline(binding) + build_pipeline(pipeline)
    n0, c0 = sum(1 for _ in g.walk()), len(g.constants)
    run = run_pipeline(g, pipeline, dims=binding or None, verify_each=args.verify_each, time_passes=args.time_passes,
                 check_numerics=args.check_numerics, inputs=load_inputs(args.inputs), seed=args.seed,
                 dump_ir=when, dump_dir=dump_dir, dump_formats=formats, dump_full_constants=args.dump_full_constants,
                 print_after="after-all" if args.print_after_all else None, bisect_limit=args.bisect_limit,
                 explain=explain_arg(args, report), disable=args.disable_pass, options=options,
                 where=str(args.model))
    if out is None:
        sys.stdout.write(print_ir(g))
    else:
        save_graph(g, out)
    if report is not None:
        from ..pipeline.report import fusion_report

        write_report(report, fusion_report(g, run.ctx, only=args.explain if isinstance(args.explain, str) else None),
                     str(args.model))
    if args.stats or args.time_passes:
        n1 = sum(1 for _ in g.walk())
        print(f"{args.model}: {n0} -> {n1} nodes, {c0} -> {len(g.constants)} constants", file=sys.stderr)
    if dump_dir is not None:
        print(f"dumps written to {dump_dir}", file=sys.stderr)
    return 0
