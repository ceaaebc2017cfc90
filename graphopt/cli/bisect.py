"""`graphopt bisect MODEL`: find the first rewrite application that changes the numbers.

Runs the pipeline with ``--bisect-limit N`` for a binary search over N, comparing the
oracle's outputs with the imported graph's on random (or given) inputs, and prints the
culprit: the rewrite, its rule, its pass and its nodes. Exit status 1 when one is found.
``--shape``/``--dim`` bind the model's shapes first (specialize-shapes, outside the search):
both sides of every comparison are the specialized model, as a compile with them sees it.
"""

from __future__ import annotations

import sys


def add_parser(sub) -> None:
    p = sub.add_parser("bisect", help="find the first rewrite that changes a model's numbers",
                       description="Binary-search the number of rewrite applications for the first one after which "
                                   "the oracle's outputs differ from the imported model's.")
    p.add_argument("model", help="an .onnx file, or an .ir file in graphopt's text form")
    from .opt import add_pipeline_args, add_shape_args

    add_pipeline_args(p)
    add_shape_args(p)
    p.add_argument("-v", "--verbose", action="store_true", help="print each trial")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..io import load_graph
    from ..ir.binding import shape_binding
    from ..pipeline import bisect, run_pipeline
    from ..pipeline.pipelines import specialize_pipeline
    from .opt import load_inputs, pipeline_from_args, shape_args

    pipeline, options = pipeline_from_args(args)
    shapes, dims = shape_args(args)
    binding = shape_binding(load_graph(args.model), shapes, dims, where=str(args.model)) if (shapes or dims) else {}

    def load():
        g = load_graph(args.model)
        if binding:
            run_pipeline(g, specialize_pipeline(binding), where=str(args.model))
        return g

    log = (lambda s: print(s, file=sys.stderr)) if args.verbose else None
    res = bisect(load, pipeline, inputs=load_inputs(args.inputs), seed=args.seed,
                 disable=args.disable_pass, options=options, where=str(args.model), log=log)
    sys.stdout.write(res.format())
    return 1 if (res.culprit is not None or res.mismatch) else 0
