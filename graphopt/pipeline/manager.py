"""The pass manager: runs a pipeline (a sequence of passes and fixpoint groups) over a
graph, with instruments hooked before and after every pass.

    pm = PassManager([Fixpoint([Simplify(), FoldConstants(), CSE(), DCE()])],
                     instruments=[VerifyEach(), TimePasses()])
    pm.run(graph)

Each pass reports whether it changed the graph; the manager checks that against the
graph's journal (a pass that changes the graph and says it did not, or the reverse, is
a bug and stops the pipeline with a `PassFailedError`; an unexpected exception inside a
pass is an `InternalError` naming the pass, never a user-facing error).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence, Union

from ..errors import GraphoptError, InternalError
from ..ir import Graph
from .base import Pass, PassContext
from .errors import PassFailedError


@dataclass
class Fixpoint:
    """Repeat ``items`` until an iteration changes nothing (at most ``max_iterations``)."""

    items: list["PipelineItem"]
    max_iterations: int = 8

    def describe(self) -> str:
        return "fixpoint(" + ",".join(_describe(i) for i in self.items) + ")"


PipelineItem = Union[Pass, Fixpoint]


def _describe(item: PipelineItem) -> str:
    return item.describe()


def flatten(items: Sequence[PipelineItem]) -> list[Pass]:
    out: list[Pass] = []
    for it in items:
        out.extend(flatten(it.items) if isinstance(it, Fixpoint) else [it])
    return out


@dataclass
class PassRecord:
    """What one pass invocation did (instruments get it after the pass)."""

    invocation: int         # 1-based, across the whole pipeline run
    pass_name: str
    changed: bool = False
    seconds: float = 0.0
    nodes_before: int = 0
    nodes_after: int = 0
    constants_before: int = 0
    constants_after: int = 0
    applications: int = 0
    journal: tuple = ()


class Instrument:
    """Hooks around a pipeline run. Subclasses override what they need."""

    def before_pipeline(self, graph: Graph, pm: "PassManager") -> None:
        pass

    def before_pass(self, p: Pass, graph: Graph, rec: PassRecord) -> None:
        pass

    def after_pass(self, p: Pass, graph: Graph, rec: PassRecord) -> None:
        pass

    def after_pipeline(self, graph: Graph, pm: "PassManager") -> None:
        pass


def count_nodes(graph: Graph) -> int:
    return sum(1 for _ in graph.walk())


class PassManager:
    def __init__(self, items: Sequence[PipelineItem], instruments: Sequence[Instrument] = (),
                 ctx: Optional[PassContext] = None, where: str = ""):
        self.items = list(items)
        self.instruments = list(instruments)
        self.ctx = ctx or PassContext()
        self.where = where  # a file name for messages
        self.records: list[PassRecord] = []

    def describe(self) -> str:
        return ",".join(_describe(i) for i in self.items)

    def run(self, graph: Graph) -> Graph:
        for ins in self.instruments:
            ins.before_pipeline(graph, self)
        self._run_items(self.items, graph)
        for ins in self.instruments:
            ins.after_pipeline(graph, self)
        return graph

    def _run_items(self, items: Sequence[PipelineItem], graph: Graph) -> bool:
        changed = False
        for it in items:
            if isinstance(it, Fixpoint):
                for _ in range(it.max_iterations):
                    if not self._run_items(it.items, graph):
                        break
                    changed = True
                    if self.ctx.limit_reached:
                        break  # nothing more may apply: another round would change nothing
            else:
                changed |= self.run_pass(it, graph)
        return changed

    def run_pass(self, p: Pass, graph: Graph) -> bool:
        import time

        rec = PassRecord(len(self.records) + 1, p.name)
        rec.nodes_before = count_nodes(graph)
        rec.constants_before = len(graph.constants)
        self.records.append(rec)
        for ins in self.instruments:
            ins.before_pass(p, graph, rec)
        ctx = self.ctx
        ctx.pass_name, ctx.invocation = p.name, rec.invocation
        j0 = graph.journal_size
        apps0 = ctx.count
        t0 = time.perf_counter()
        where = f"{self.where}: " if self.where else ""
        try:
            changed = p.run(graph, ctx)
        except GraphoptError as e:
            raise PassFailedError(f"{where}pass {p.name!r} (invocation {rec.invocation}) failed: {e}") from e
        except Exception as e:  # a bug in the pass: say so, and where
            on = f" on {self.where}" if self.where else ""
            raise InternalError(f"pass {p.name!r} (invocation {rec.invocation}){on}", e) from e
        rec.seconds = time.perf_counter() - t0
        journal = graph.journal[j0:]
        rec.journal = journal
        if not isinstance(changed, bool):
            raise PassFailedError(f"{where}pass {p.name!r} returned {changed!r}, not a bool")
        if changed and not journal:
            raise PassFailedError(f"{where}pass {p.name!r} reported a change but the graph's journal is empty")
        if not changed and journal:
            raise PassFailedError(f"{where}pass {p.name!r} reported no change but changed the graph "
                                  f"({len(journal)} journal entries, first: {journal[0]})")
        rec.changed = changed
        rec.applications = ctx.count - apps0
        rec.nodes_after = count_nodes(graph)
        rec.constants_after = len(graph.constants)
        for ins in self.instruments:
            ins.after_pass(p, graph, rec)
        return changed
