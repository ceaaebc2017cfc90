"""`graphopt show MODEL`: print a model's IR in the text form."""

from __future__ import annotations

import sys


def add_parser(sub) -> None:
    p = sub.add_parser("show", help="print a model's IR (.onnx or .ir text) in graphopt's text form",
                       description="Import MODEL (.onnx, or .ir text) and print its IR.")
    p.add_argument("model", help="an .onnx file, or an .ir file in graphopt's text form")
    p.add_argument("--full-constants", action="store_true",
                   help="print every constant's data (base64) instead of a digest")
    p.add_argument("--no-verify", action="store_true", help="skip the verifier")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..io import load_graph
    from ..ir.printer import print_ir
    from ..ir.verifier import verify

    g = load_graph(args.model)
    if not args.no_verify:
        verify(g)
    sys.stdout.write(print_ir(g, full_constants=args.full_constants))
    return 0
