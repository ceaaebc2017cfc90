"""Instruments: before/after hooks on the pass manager.

- `VerifyEach`: the verifier after every pass (and on the input graph).
- `TimePasses`: a table of time per pass invocation, nodes before/after.
- `DumpIR`: after every pass, after the passes that changed the graph, or after named
  passes: numbered files in a folder, as text (parses back), ONNX (Netron) and/or DOT.
- `PrintAfter`: the text form to a stream after every (or named) pass.
- `CheckNumerics`: after every pass that changed the graph, run it on the oracle and
  compare with the graph as it was before the pipeline; stop and name the pass on a mismatch.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence, TextIO

import numpy as np

from ..ir import Graph
from .base import Pass
from .errors import NumericsMismatchError, PassVerificationError
from .manager import Instrument, PassManager, PassRecord, count_nodes


class VerifyEach(Instrument):
    def __init__(self, check_types: bool = True):
        self.check_types = check_types

    def _verify(self, graph: Graph, what: str) -> None:
        from ..ir.verifier import VerificationError, verify

        try:
            verify(graph, check_types=self.check_types)
        except VerificationError as e:
            more = f" (and {len(e.problems) - 1} more problems)" if len(e.problems) > 1 else ""
            raise PassVerificationError(f"{what}: the verifier failed: {e.problems[0]}{more}") from e

    def before_pipeline(self, graph, pm):
        self._verify(graph, f"{pm.where + ': ' if pm.where else ''}the input graph")

    def after_pass(self, p, graph, rec):
        self._verify(graph, f"after pass {p.name!r} (invocation {rec.invocation})")


class TimePasses(Instrument):
    def __init__(self, stream: Optional[TextIO] = None):
        self.stream = stream
        self.records: list[PassRecord] = []
        self.total = 0.0

    def after_pass(self, p, graph, rec):
        self.records.append(rec)

    def after_pipeline(self, graph, pm):
        if self.stream is not None:
            self.stream.write(self.format())

    def format(self) -> str:
        rows = [("#", "pass", "time (ms)", "nodes before", "nodes after", "consts after", "rewrites", "changed")]
        total = 0.0
        for r in self.records:
            total += r.seconds
            rows.append((str(r.invocation), r.pass_name, f"{r.seconds * 1000:.1f}", str(r.nodes_before),
                         str(r.nodes_after), str(r.constants_after), str(r.applications), "yes" if r.changed else "no"))
        per: dict[str, float] = {}
        for r in self.records:
            per[r.pass_name] = per.get(r.pass_name, 0.0) + r.seconds
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = ["=== pass timing ==="]
        for k, row in enumerate(rows):
            lines.append("  ".join(c.rjust(w) if i not in (1,) else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))))
            if k == 0:
                lines.append("  ".join("-" * w for w in widths))
        lines.append(f"total {total * 1000:.1f} ms over {len(self.records)} pass invocations; per pass: "
                     + ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in sorted(per.items(), key=lambda kv: -kv[1])))
        return "\n".join(lines) + "\n"


def _selected(when: str | Sequence[str], p: Pass, rec: PassRecord) -> bool:
    if when == "after-all":
        return True
    if when == "after-change":
        return rec.changed
    names = [when] if isinstance(when, str) else list(when)
    return p.name in names


class DumpIR(Instrument):
    """Numbered dumps: ``000-input.ir``, then ``NNN-<pass>.{ir,onnx,dot}`` after each
    selected pass invocation. ``when``: "after-all", "after-change", or pass names."""

    FORMATS = ("ir", "onnx", "dot")

    def __init__(self, folder, when: str | Sequence[str] = "after-all", formats: Iterable[str] = ("ir",),
                 full_constants: bool = False):
        self.folder = Path(folder)
        self.when = when
        self.formats = tuple(formats)
        bad = [f for f in self.formats if f not in self.FORMATS]
        if bad:
            from .errors import PassOptionError

            raise PassOptionError(f"unknown dump format(s) {', '.join(bad)} (use {', '.join(self.FORMATS)})")
        self.full_constants = full_constants
        self.written: list[Path] = []

    def _write(self, graph: Graph, stem: str) -> None:
        from ..errors import OutputPathError

        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OutputPathError(f"{self.folder}: cannot create the dump folder: {e.strerror}") from None
        for fmt in self.formats:
            path = self.folder / f"{stem}.{fmt}"
            if fmt == "ir":
                from ..ir.printer import print_ir
                from ..util.files import atomic_write_text

                atomic_write_text(path, print_ir(graph, full_constants=self.full_constants))
            elif fmt == "onnx":
                from ..io import save_graph

                save_graph(graph, path)
            else:
                from ..util.files import atomic_write_text
                from .dot import to_dot

                atomic_write_text(path, to_dot(graph))
            self.written.append(path)

    def before_pipeline(self, graph, pm):
        self._write(graph, "000-input")

    def after_pass(self, p, graph, rec):
        if _selected(self.when, p, rec):
            self._write(graph, f"{rec.invocation:03d}-{p.name}")


class PrintAfter(Instrument):
    def __init__(self, when: str | Sequence[str] = "after-all", stream: Optional[TextIO] = None):
        self.when = when
        self.stream = stream

    def after_pass(self, p, graph, rec):
        if _selected(self.when, p, rec):
            from ..ir.printer import print_ir

            out = self.stream or sys.stderr
            out.write(f"// ----- IR after pass {p.name} (invocation {rec.invocation}) -----\n")
            out.write(print_ir(graph))


class CheckNumerics(Instrument):
    """Run the graph on the oracle after every pass that changed it and compare with the
    outputs of the graph the pipeline started from. ``inputs``: by name (default: random,
    from ``seed``; symbolic dims take ``dims`` or 2)."""

    def __init__(self, inputs: Optional[Mapping[str, np.ndarray]] = None, seed: int = 0,
                 dims: Optional[Mapping[str, int]] = None, every_pass: bool = False):
        self.inputs = dict(inputs) if inputs is not None else None
        self.seed = seed
        self.dims = dims
        self.every_pass = every_pass
        self.reference: Optional[list[np.ndarray]] = None
        self.checks = 0
        self.where = ""

    def before_pipeline(self, graph, pm):
        from ..testing.oracle import random_inputs, run_reference

        self.where = f"{pm.where}: " if pm.where else ""
        if self.inputs is None:
            self.inputs = random_inputs(graph, seed=self.seed, dims=self.dims)
        else:
            names = [v.name for v in graph.inputs]
            missing = [n for n in names if n not in self.inputs]
            extra = [n for n in self.inputs if n not in names]
            if missing or extra:
                raise NumericsMismatchError(
                    f"{self.where}the given inputs do not match the graph's: "
                    + (f"missing {', '.join(missing)}" if missing else "")
                    + ("; " if missing and extra else "") + (f"unknown {', '.join(extra)}" if extra else ""))
        self.reference = run_reference(graph, self.inputs)
        self.names = [o.name for o in graph.outputs]

    def after_pass(self, p, graph, rec):
        if not rec.changed and not self.every_pass:
            return
        from ..testing.oracle import OracleError, compare_outputs, run_reference

        try:
            got = run_reference(graph, self.inputs)
        except OracleError as e:
            raise NumericsMismatchError(f"{self.where}after pass {p.name!r} (invocation {rec.invocation}): {e}",
                                        p.name) from e
        self.checks += 1
        bad = compare_outputs(self.reference, got, self.names)
        if bad:
            raise NumericsMismatchError(
                f"{self.where}numbers changed after pass {p.name!r} (invocation {rec.invocation}): "
                + "; ".join(str(m) for m in bad[:3]), p.name, bad)
