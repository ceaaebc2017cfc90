"""`graphopt quantize MODEL --weights int8|int4 [--block 32] [--zero-point] [--dynamic |
--static --calibration DATA.npz [--method minmax|percentile|entropy] [--save-table T.json] |
--table T.json] -o q.onnx`: int8 or int4 weights, weight-only, with run-time int8
activations, or with static int8 activations calibrated on DATA (`graphopt.quantize`), written as QDQ ONNX that onnxruntime runs and `graphopt compile` turns into integer kernels; the
accuracy report goes to stderr (and to ``--report FILE.json``). The output is written atomically: a failure leaves no file."""

from __future__ import annotations

import sys


def add_parser(sub) -> None:
    p = sub.add_parser("quantize", help="quantize a model's weights (int8, int4), with an accuracy report",
                       description="Quantize MODEL's MatMul/Gemm weights to int8 or int4 and write QDQ ONNX.")
    p.add_argument("model", help="an .onnx file")
    p.add_argument("-o", "--output", required=True, metavar="OUT.onnx", help="the quantized model (.onnx)")
    p.add_argument("--weights", default="int8", choices=["int8", "int4"], help="weight precision (default int8)")
    p.add_argument("--block", type=int, metavar="N",
                   help="one scale per N rows of K (opset 21's block_size); 0: one per output column (default for "
                        "int8; int4's default is 32)")
    p.add_argument("--zero-point", action="store_true",
                   help="uint8/uint4 weights with a zero point per scale instead of symmetric int8/int4")
    p.add_argument("--dynamic", action="store_true",
                   help="also quantize those matmuls' activations at run time (u8 per tensor: the integer kernel)")
    p.add_argument("--static", action="store_true",
                   help="also quantize those matmuls' activations with a fixed u8 scale each, calibrated on "
                        "--calibration (or read from --table)")
    p.add_argument("--method", choices=["minmax", "percentile", "entropy"],
                   help="how --static calibrates an activation's range (default minmax; implies --static)")
    p.add_argument("--percentile", type=float, default=99.99, metavar="P",
                   help="--method percentile: keep the values between the (100-P)th and Pth percentiles "
                        "(default 99.99)")
    p.add_argument("--table", metavar="T.json", help="static activations from this calibration table (implies "
                                                     "--static; written by --save-table)")
    p.add_argument("--save-table", metavar="T.json", help="also write the calibration table, to reuse with --table")
    p.add_argument("--exclude", default="", metavar="A,B", help="node names to keep in float32")
    p.add_argument("--min-elements", type=int, default=4096, metavar="N",
                   help="quantize weights of at least N elements (default 4096)")
    p.add_argument("--calibration", metavar="DATA.npz",
                   help="samples: one array per model input, by name, samples stacked on a new leading axis; "
                        "--static calibrates on all of them, the accuracy report compares up to 8 (default: one "
                        "random sample)")
    p.add_argument("--report", metavar="FILE.json", help="also write the accuracy report as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    import json
    from pathlib import Path

    from ..errors import GraphoptError
    from ..io import load_graph, save_graph
    from ..quantization import quantize
    from ..util.files import atomic_write_text
    from .opt import load_inputs

    out = Path(args.output)
    if out.suffix != ".onnx":
        raise GraphoptError(f"{out}: the quantized model is written as .onnx")
    data = load_inputs(args.calibration)
    static = args.static or args.method is not None or args.table is not None
    if args.save_table and not static:
        raise GraphoptError("--save-table writes the calibration of --static activations; add --static")
    try:
        q, report = quantize(load_graph(args.model), data, weights=args.weights, block=args.block, dynamic=args.dynamic,
                             zero_point=args.zero_point, static=static, method=args.method or "minmax",
                             percentile=args.percentile, table=args.table,
                             exclude=[s for s in args.exclude.split(",") if s], min_elements=args.min_elements)
    except GraphoptError as e:
        raise GraphoptError(f"{args.model}: {e}") from e
    save_graph(q, out)
    if args.save_table:
        report.table.save(args.save_table)
    if args.report:
        atomic_write_text(Path(args.report), json.dumps({"model": args.model, **report.to_json()}, indent=1) + "\n")
    print(report.summary(), file=sys.stderr)
    print(f"wrote {out}", file=sys.stderr)
    return 0
