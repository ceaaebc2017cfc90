"""What one fuzz case observed, and the one category it gets.

A case function returns an `Obs`: the calls it made (each recorded by `Obs.call` or
`Obs.cli` with what came out of it) and the flags only the case can judge (wrong numbers,
a read outside the model's folder, files left behind, a later run that failed). `classify`
turns that, and what the worker pool saw (a dead worker, a case past its time), into
exactly one category."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Optional

CLEAN = "clean error"
TRACEBACK = "traceback"
CRASH = "crash"
HANG = "hang"
ACCEPTED = "accepted"
ACCEPTED_INVALID = "accepted-invalid"
REFUSED_VALID = "refused-valid"
PARTIAL = "partial output left"
READ_OUTSIDE = "read outside the folder"
CORRUPT_LATER = "corrupt state later"
HARNESS = "harness error"

CATEGORIES = [CLEAN, ACCEPTED, TRACEBACK, CRASH, HANG, ACCEPTED_INVALID, REFUSED_VALID, PARTIAL, READ_OUTSIDE,
              CORRUPT_LATER, HARNESS]
PASSING = {CLEAN, ACCEPTED}

# What a case expects, decided from the spec before looking at graphopt's answer.
ERROR, ACCEPT, EITHER = "error", "accept", "either"


@dataclass
class Call:
    """One call under test: ``status`` is "ok", "error" (a GraphoptError), "bug" (any other
    exception: a traceback or internal error reaches the user), "crash" or "hang"."""
    what: str
    status: str = "ok"
    message: str = ""
    detail: str = ""


@dataclass
class Obs:
    expect: str = ERROR
    calls: list = field(default_factory=list)
    wrong: Optional[str] = None          # accepted, but the numbers or the result are wrong
    read_outside: Optional[str] = None   # a file outside the model's folder was read
    partial: Optional[str] = None        # files left next to the output after a failure
    corrupt_later: Optional[str] = None  # the next run with the same state failed
    note: str = ""

    @contextmanager
    def call(self, what: str):
        """Record the outcome of the block as one call; exceptions do not escape."""
        from graphopt.errors import GraphoptError

        c = Call(what)
        self.calls.append(c)
        try:
            yield c
        except GraphoptError as e:
            c.status, c.message = "error", str(e)
        except Exception as e:  # noqa: BLE001 - any other exception is what the case looks for
            c.status, c.message = "bug", f"{type(e).__name__}: {e}"
            c.detail = "".join(traceback.format_exception(type(e), e, e.__traceback__)[-6:])

    def cli(self, argv: list, timeout: float = 120, cwd=None, env=None, fsize: Optional[int] = None) -> Call:
        """Run ``graphopt ARGV...`` as a subprocess and record how it ended (``fsize``: a
        file size limit in bytes, to make its writes fail)."""
        cmd = [sys.executable, "-m", "graphopt", *map(str, argv)]
        c = Call("graphopt " + " ".join(map(str, argv)))
        self.calls.append(c)
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd,
                                env={**os.environ, **(env or {})}, start_new_session=True,
                                preexec_fn=(lambda: _limit_fsize(fsize)) if fsize else None)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            c.status, c.message = "hang", f"past its {timeout:.0f} s limit"
            return c
        c.rc, c.stdout, c.stderr = proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")
        c.status, c.message = _cli_status(proc.returncode, c.stderr)
        c.detail = "\n".join(_meaningful(c.stderr)[-6:])
        return c

    @property
    def status(self) -> str:
        """The worst status among the calls (a case usually makes one)."""
        order = ["crash", "hang", "bug", "error", "ok"]
        return min((c.status for c in self.calls), key=order.index, default="ok")


def _limit_fsize(n: int) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_FSIZE, (n, n))


def _meaningful(stderr: str) -> list:
    # TVM's native "Warning: Scope Saving" lines are noise, not an answer to the user.
    return [ln for ln in stderr.splitlines() if ln.strip() and "Warning: Scope" not in ln]


def _cli_status(rc: int, stderr: str) -> tuple:
    lines = _meaningful(stderr)
    if rc < 0:
        return "crash", f"killed by {signal.Signals(-rc).name}"
    if "Traceback (most recent call last)" in stderr or "internal error" in stderr:
        return "bug", next((ln for ln in lines if "internal error" in ln), lines[-1] if lines else "")
    if rc == 0:
        return "ok", ""
    errs = [ln for ln in lines if ln.startswith("graphopt: error:") or (rc == 2 and "error:" in ln)]
    if rc in (1, 2) and len(errs) == 1:
        return "error", errs[0]
    return "bug", f"exit {rc}: " + (lines[-1] if lines else "(no message)")


def classify(obs: Optional[Obs], pool_status: str = "", pool_detail: str = "") -> tuple:
    """(category, first lines of what happened)."""
    if pool_status == "crash":
        return CRASH, pool_detail
    if pool_status == "hang":
        return HANG, pool_detail
    if pool_status == "harness":
        return HARNESS, pool_detail
    st = obs.status
    first = next((c for c in obs.calls if c.status == st), None)
    said = f"{first.what}: {first.message}" if first else obs.note
    if st == "crash":
        return CRASH, said
    if st == "hang":
        return HANG, said
    for flag, cat in ((obs.read_outside, READ_OUTSIDE), (obs.corrupt_later, CORRUPT_LATER), (obs.partial, PARTIAL)):
        if flag:
            return cat, f"{flag} ({said})" if said else flag
    if st == "bug":
        return TRACEBACK, said + ("\n" + first.detail if first and first.detail else "")
    if st == "error":
        msg = first.message
        if not msg.strip():
            return TRACEBACK, f"{first.what}: an error without a message ({type(first).__name__})"
        return (REFUSED_VALID, said) if obs.expect == ACCEPT else (CLEAN, said)
    if obs.wrong:
        return ACCEPTED_INVALID, obs.wrong
    if obs.expect == ERROR:
        return ACCEPTED_INVALID, "accepted, but an error was expected: " + (obs.note or said or
                                                                            ", ".join(c.what for c in obs.calls))
    return ACCEPTED, obs.note
