"""The worker pool. Cases run in a few persistent spawned workers (each imports graphopt
once); each case has a time limit. A worker that dies mid-case is a crash and is replaced;
a case past its limit is a hang (the worker is killed and replaced). CLI cases are
subprocesses started by a worker, with their own timeout."""

from __future__ import annotations

import multiprocessing as mp
import multiprocessing.connection
import os
import signal
import sys
import time
import traceback
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from .case import Case
from .context import ROOT_ENV, Ctx
from .outcome import HARNESS, classify

_START_LIMIT = 600.0   # seconds a fresh worker may take to import graphopt on a loaded machine
_MARGIN = 30.0         # on top of a case's own limit: its CLI subprocess times out first


@dataclass
class Result:
    id: str
    family: str
    what: str
    category: str
    detail: str
    expect: str
    seconds: float


def _worker_main(conn, root: str, log: str, warm: bool = True) -> None:
    # Native libraries (TVM, onnxruntime) write to fds 1 and 2; keep that out of the report.
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.environ[ROOT_ENV] = root
    import graphopt  # noqa: F401 - imported once per worker, before the first case's clock starts

    if warm:
        import graphopt.compiler  # noqa: F401 - TVM, which most cases need

    ctx = Ctx(root)
    conn.send("ready")
    while True:
        case = conn.recv()
        if case is None:
            return
        try:
            conn.send(("done", case.resolve()(ctx, **case.args)))
        except Exception as e:  # noqa: BLE001 - a bug in the case itself, reported as such
            conn.send(("harness", f"{type(e).__name__}: {e}\n" + "".join(traceback.format_exc().splitlines(True)[-8:])))
        sys.stdout.flush()
        sys.stderr.flush()


class _Worker:
    _count = 0

    def __init__(self, mpctx, root: Path, warm: bool = True):
        _Worker._count += 1
        self.log = root / f"worker-{_Worker._count}.log"
        self.conn, child = mpctx.Pipe()
        self.proc = mpctx.Process(target=_worker_main, args=(child, str(root), str(self.log), warm), daemon=True)
        self.proc.start()
        child.close()
        self.ready = False
        self.case: Optional[Case] = None
        self.started = time.monotonic()
        self.deadline = self.started + _START_LIMIT

    def assign(self, case: Case) -> None:
        self.case, self.started = case, time.monotonic()
        self.log_at = self.log.stat().st_size if self.log.exists() else 0
        self.deadline = self.started + case.timeout + _MARGIN
        self.conn.send(case)

    def case_log(self, n: int = 6) -> str:
        """The first lines the worker wrote during its last case (a fatal signal's report)."""
        try:
            with open(self.log, "rb") as f:
                f.seek(getattr(self, "log_at", 0))
                text = f.read().decode(errors="replace")
        except OSError:
            return ""
        lines = [ln for ln in text.splitlines() if ln.strip() and "Warning: Scope" not in ln]
        fatal = next((i for i, ln in enumerate(lines) if "Fatal" in ln or "Segmentation" in ln or "!!!" in ln), 0)
        return "\n".join(lines[fatal:fatal + n])

    def log_tail(self, n: int = 4) -> str:
        try:
            lines = [ln for ln in self.log.read_text(errors="replace").splitlines() if ln.strip()]
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    def kill(self) -> None:
        if self.proc.is_alive():
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.join(10)


def run_cases(cases: list, root: Path, jobs: int = 2, on_result: Optional[Callable] = None, warm: bool = True) -> list:
    """Run ``cases`` in ``jobs`` workers; a Result per case, in the order they finished.
    ``warm``: workers import TVM before their first case."""
    mpctx = mp.get_context("spawn")
    pending = deque(cases)
    results: list = []
    workers = [_Worker(mpctx, root, warm) for _ in range(max(1, min(jobs, len(cases))))]

    def finish(w: _Worker, category: str, detail: str, expect: str = "") -> None:
        r = Result(w.case.id, w.case.family, w.case.what, category, detail, expect, time.monotonic() - w.started)
        results.append(r)
        w.case, w.deadline = None, float("inf")
        if on_result:
            on_result(r)

    try:
        while pending or any(w.case for w in workers):
            for w in workers:
                if w.ready and w.case is None and pending:
                    w.assign(pending.popleft())
            now = time.monotonic()
            wait_s = max(0.05, min(w.deadline for w in workers) - now)
            mp.connection.wait([w.conn for w in workers] + [w.proc.sentinel for w in workers], timeout=wait_s)
            for i, w in enumerate(workers):
                replace = _service(w, finish)
                if replace:
                    w.kill()
                    workers[i] = _Worker(mpctx, root, warm)
    finally:
        for w in workers:
            try:
                w.conn.send(None)
            except OSError:
                pass
            w.proc.join(5)
            w.kill()
    return results


def _service(w: _Worker, finish) -> bool:
    """Handle what worker ``w`` has to say; True when it must be replaced."""
    if w.conn.poll():
        try:
            msg = w.conn.recv()
        except (EOFError, OSError):
            msg = None
        if msg == "ready":
            w.ready = True
            return False
        if msg is not None:
            kind, payload = msg
            if kind == "harness":
                finish(w, HARNESS, payload)
            else:
                cat, detail = classify(payload)
                finish(w, cat, detail, payload.expect)
            return False
    if not w.proc.is_alive():
        if not w.ready:
            raise RuntimeError(f"a fuzz worker died while importing graphopt:\n{w.log_tail(20)}")
        if w.case is not None:
            code = w.proc.exitcode
            how = f"killed by {signal.Signals(-code).name}" if code and code < 0 else f"exited with {code}"
            finish(w, *classify(None, "crash", f"the worker process {how}\n{w.case_log()}"))
        return True
    if time.monotonic() > w.deadline:
        if w.case is None:
            raise RuntimeError(f"a fuzz worker did not start within {_START_LIMIT:.0f} s")
        finish(w, *classify(None, "hang", f"past its {w.case.timeout:.0f} s limit (worker killed)"))
        return True
    return False
