"""Runs conformance cases in worker processes with a time limit per case and stage, so a
native crash or a hang is counted rather than fatal."""

from __future__ import annotations

import multiprocessing as mp
import re
import time
import traceback
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from typing import Callable, Optional, Sequence

from .stages import CRASH, MISMATCH, PASS, UNSUPPORTED

MIN_CASES = 1800  # onnx 1.23.2 ships 1,884 node cases; fewer means the loader broke
STATUSES = (PASS, MISMATCH, UNSUPPORTED, CRASH)
DEFAULT_STAGES = ("ort", "O0", "O1", "tvm")


@dataclass
class Case:
    name: str
    ops: str
    model_bytes: bytes
    inputs: list
    outputs: list
    rtol: float
    atol: float


@dataclass
class Result:
    case: str
    ops: str
    stage: str
    status: str
    detail: str = ""
    seconds: float = 0.0


@dataclass
class Report:
    collected: int
    selected: int
    stages: list[str]
    results: list[Result] = field(default_factory=list)

    def counts(self) -> dict[str, dict[str, int]]:
        out = {s: {k: 0 for k in STATUSES} for s in self.stages}
        for r in self.results:
            out[r.stage][r.status] += 1
        return out

    def to_json(self) -> dict:
        return {
            "collected": self.collected,
            "selected": self.selected,
            "stages": self.counts(),
            "failures": [
                {"case": r.case, "ops": r.ops, "stage": r.stage, "status": r.status, "detail": r.detail}
                for r in self.results if r.status != PASS
            ],
        }


def load_cases(only: Optional[str] = None) -> tuple[int, list[Case]]:
    """All of onnx's node test cases (built in memory), and those matching ``only``."""
    import warnings

    from onnx.backend.test.loader import load_model_tests

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tests = load_model_tests(kind="node")
    pattern = re.compile(only) if only else None
    cases = []
    for t in tests:
        if pattern is not None and not pattern.search(t.name):
            continue
        inputs, outputs = t.data_sets[0] if t.data_sets else ([], [])
        ops = ",".join(dict.fromkeys(n.op_type for n in t.model.graph.node)) or "-"
        cases.append(Case(t.name, ops, t.model.SerializeToString(), list(inputs), list(outputs), t.rtol, t.atol))
    return len(tests), cases


def _worker(conn) -> None:
    import os
    import warnings

    import onnx

    os.environ.setdefault("TVM_NUM_THREADS", "1")
    warnings.simplefilter("ignore")
    from .stages import run_stage

    while True:
        msg = conn.recv()
        if msg is None:
            return
        tid, stage, model_bytes, inputs, outputs, rtol, atol = msg
        t0 = time.perf_counter()
        try:
            model = onnx.load_from_string(model_bytes)
            status, detail = run_stage(stage, model, inputs, outputs, rtol, atol)
        except Exception as e:  # anything but a clean "unsupported" is a crash
            tb = traceback.extract_tb(e.__traceback__)
            where = f" at {tb[-1].filename.split('site-packages/')[-1]}:{tb[-1].lineno}" if tb else ""
            status, detail = CRASH, f"{type(e).__name__}: {str(e).strip()[:300]}{where}"
        conn.send((tid, status, detail[:500], time.perf_counter() - t0))


class _Slot:
    def __init__(self, ctx):
        self.parent, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker, args=(child,), daemon=True)
        self.proc.start()
        child.close()
        self.task: Optional[int] = None
        self.started = 0.0

    def kill(self) -> None:
        try:
            self.proc.kill()
        except Exception:
            pass
        self.proc.join(5)
        self.parent.close()


def run_conformance(only: Optional[str] = None, stages: Sequence[str] = DEFAULT_STAGES, workers: int = 2,
                    timeout: float = 120.0, progress: Optional[Callable[[int, int], None]] = None,
                    require_min: bool = True) -> Report:
    """Run the selected cases through ``stages``; a worker that dies or exceeds ``timeout``
    seconds on a task counts that task as a crash and is replaced."""
    collected, cases = load_cases(only)
    if require_min and collected < MIN_CASES:
        raise RuntimeError(f"only {collected} conformance cases collected (expected at least {MIN_CASES}): "
                           "onnx's test loader is broken or the onnx version changed")
    tasks = [(ci, st) for ci in range(len(cases)) for st in stages]
    report = Report(collected, len(cases), list(stages))
    ctx = mp.get_context("spawn")
    slots = [_Slot(ctx) for _ in range(max(1, min(workers, len(tasks) or 1)))]
    pending = list(range(len(tasks)))[::-1]
    done = 0

    def record(tid: int, status: str, detail: str, secs: float) -> None:
        nonlocal done
        ci, st = tasks[tid]
        c = cases[ci]
        report.results.append(Result(c.name, c.ops, st, status, detail, secs))
        done += 1
        if progress:
            progress(done, len(tasks))

    def dispatch(slot: _Slot) -> None:
        if not pending:
            return
        tid = pending.pop()
        ci, st = tasks[tid]
        c = cases[ci]
        slot.task, slot.started = tid, time.monotonic()
        slot.parent.send((tid, st, c.model_bytes, c.inputs, c.outputs, c.rtol, c.atol))

    try:
        for s in slots:
            dispatch(s)
        while any(s.task is not None for s in slots):
            busy = [s for s in slots if s.task is not None]
            ready = wait([s.parent for s in busy] + [s.proc.sentinel for s in busy], timeout=1.0)
            now = time.monotonic()
            for i, s in enumerate(slots):
                if s.task is None:
                    continue
                if s.parent in ready:
                    try:
                        tid, status, detail, secs = s.parent.recv()
                    except (EOFError, OSError):
                        tid, status, detail, secs = s.task, CRASH, "worker died (native crash)", now - s.started
                        s.kill()
                        slots[i] = s = _Slot(ctx)
                    record(tid, status, detail, secs)
                    s.task = None
                    dispatch(s)
                elif s.proc.sentinel in ready or not s.proc.is_alive():
                    code = s.proc.exitcode
                    record(s.task, CRASH, f"worker died (exit code {code})", now - s.started)
                    s.kill()
                    slots[i] = s = _Slot(ctx)
                    dispatch(s)
                elif now - s.started > timeout:
                    record(s.task, CRASH, f"timed out after {timeout:.0f} s", now - s.started)
                    s.kill()
                    slots[i] = s = _Slot(ctx)
                    dispatch(s)
    finally:
        for s in slots:
            try:
                s.parent.send(None)
            except Exception:
                pass
            s.kill()
    order = {name: i for i, name in enumerate(c.name for c in cases)}
    report.results.sort(key=lambda r: (order[r.case], report.stages.index(r.stage)))
    return report


def format_summary(report: Report) -> str:
    counts = report.counts()
    lines = [f"conformance: {report.selected} of {report.collected} onnx node cases",
             "", "| stage | pass | mismatch | unsupported | crash |", "|---|---:|---:|---:|---:|"]
    for st in report.stages:
        c = counts[st]
        lines.append(f"| {st} | {c[PASS]} | {c[MISMATCH]} | {c[UNSUPPORTED]} | {c[CRASH]} |")
    return "\n".join(lines)


def format_failures_by_op(report: Report, limit: int = 40) -> str:
    by: dict[tuple[str, str, str], list[str]] = {}
    for r in report.results:
        if r.status in (MISMATCH, CRASH):
            by.setdefault((r.stage, r.status, r.ops), []).append(r.case)
    lines = []
    for (st, status, ops), names in sorted(by.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:limit]:
        lines.append(f"  {st:4} {status:8} {ops}: {len(names)} ({', '.join(names[:3])}{', ...' if len(names) > 3 else ''})")
    return "\n".join(lines)
