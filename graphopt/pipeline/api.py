"""`run_passes`: the Python entry point of the pass manager.

    g = graphopt.import_onnx("model.onnx")
    g = graphopt.run_passes(g, "O1", verify_each=True, time_passes=True, check_numerics=True)
    g = graphopt.run_passes(g, ["fold-constants", "dce"], dump_ir="after-all", dump_dir="dumps")

The graph is rewritten in place and returned. `run_pipeline` does the same and returns a
`PipelineRun` with the records, the applications and the instruments' results.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Optional, Sequence, TextIO, Union

import numpy as np

from ..ir import Graph
from .base import Application, PassContext
from .instruments import CheckNumerics, DumpIR, PrintAfter, TimePasses, VerifyEach
from .manager import Instrument, PassManager, PassRecord
from .pipelines import PipelineLike, build_pipeline


@dataclass
class PipelineRun:
    graph: Graph
    manager: PassManager
    ctx: PassContext
    timing: Optional[TimePasses] = None
    numerics: Optional[CheckNumerics] = None
    dumps: Optional[DumpIR] = None

    @property
    def records(self) -> list[PassRecord]:
        return self.manager.records

    @property
    def applications(self) -> list[Application]:
        return self.ctx.applications


def _stream(x, default: TextIO) -> Optional[TextIO]:
    if x is True:
        return default
    if not x:
        return None
    return x  # a stream


def run_pipeline(graph: Graph, pipeline: PipelineLike = "O1", *,
                 verify_each: bool = False,
                 time_passes: Union[bool, TextIO] = False,
                 check_numerics: bool = False,
                 inputs: Optional[Mapping[str, np.ndarray]] = None,
                 seed: int = 0,
                 dims: Optional[Mapping[str, int]] = None,
                 dump_ir: Union[None, str, Sequence[str]] = None,
                 dump_dir=None,
                 dump_formats: Iterable[str] = ("ir",),
                 dump_full_constants: bool = False,
                 print_after: Union[None, str, Sequence[str]] = None,
                 print_stream: Optional[TextIO] = None,
                 bisect_limit: Optional[int] = None,
                 explain: Union[bool, str, TextIO] = False,
                 disable: Iterable[str] = (),
                 options: Optional[Mapping[str, Mapping[str, object]]] = None,
                 instruments: Sequence[Instrument] = (),
                 where: str = "") -> PipelineRun:
    """Run a pipeline with the instruments the keywords ask for (see `run_passes`)."""
    items = build_pipeline(pipeline, disable=disable, options=options)
    ctx = PassContext(bisect_limit=bisect_limit, explain=bool(explain))
    ins: list[Instrument] = []
    run = PipelineRun(graph, None, ctx)  # type: ignore[arg-type]
    if verify_each:
        ins.append(VerifyEach())
    if dump_ir:
        if dump_dir is None:
            from ..errors import GraphoptError

            raise GraphoptError("dump_ir needs a dump_dir (the folder the numbered dumps go to)")
        run.dumps = DumpIR(dump_dir, dump_ir, dump_formats, dump_full_constants)
        ins.append(run.dumps)
    if print_after:
        ins.append(PrintAfter(print_after, print_stream))
    if check_numerics:
        run.numerics = CheckNumerics(inputs, seed=seed, dims=dims)
        ins.append(run.numerics)
    ts = _stream(time_passes, sys.stderr)
    if time_passes:
        run.timing = TimePasses(ts)
        ins.append(run.timing)
    ins.extend(instruments)
    pm = PassManager(items, ins, ctx, where=where)
    run.manager = pm
    pm.run(graph)
    only = explain if isinstance(explain, str) else None  # a rule-name filter, report on stderr
    es = _stream(True if only else explain, sys.stderr)
    if es is not None and ctx.explain is not None:
        es.write("=== explain ===\n" + ctx.explain.format(only=only))
    return run


def run_passes(graph: Graph, pipeline: PipelineLike = "O1", **instruments) -> Graph:
    """Rewrite ``graph`` in place with ``pipeline`` ("O0", "O1", a spec such as
    "fold-constants,dce", or a list of pass names / Pass instances) and return it.

    Instruments (keywords): ``verify_each``; ``time_passes`` (True: a table on stderr, or a
    stream); ``check_numerics`` (with ``inputs`` by name, else random from ``seed``);
    ``dump_ir`` ("after-all", "after-change" or pass names) with ``dump_dir`` and
    ``dump_formats`` (any of "ir", "onnx", "dot"); ``print_after``; ``bisect_limit``;
    ``explain`` (True: a per-rule report on stderr, or a stream; a string: only the rules
    whose name contains it, on stderr); ``disable`` (pass names);
    ``options`` ({pass: {option: value}}); ``instruments`` (extra `Instrument` objects).
    """
    return run_pipeline(graph, pipeline, **instruments).graph


from ..ir.clone import clone_graph  # noqa: E402,F401  (re-exported: graphopt.pipeline.clone_graph)
