"""One run of the campaign: a temp root, the base artifacts the cases need, the cases,
the results; the root is removed afterwards."""

from __future__ import annotations

import os
import shutil
import sys
from typing import Callable, Optional

from . import catalog, fixtures
from .context import make_root
from .outcome import HARNESS, PASSING
from .runner import Result, run_cases


def run(full: bool = False, only: Optional[str] = None, jobs: int = 2, progress: bool = False,
        keep: bool = False) -> list:
    cases = catalog.select(full, only)
    root = make_root()
    saved = {k: os.environ.get(k) for k in ("GRAPHOPT_CACHE_DIR",)}
    # Nothing the campaign compiles or tunes may touch the user's tuning database.
    os.environ["GRAPHOPT_CACHE_DIR"] = str(root / "cache")
    try:
        show = _printer(len(cases)) if progress else None
        setup = run_cases(fixtures.setup_cases(fixtures.needed(cases)), root, jobs)
        broken = {r.id.split("/", 1)[1]: r for r in setup if r.category not in PASSING}
        runnable = [c for c in cases if not broken.keys() & set(c.needs)]
        results = [Result(c.id, c.family, c.what, HARNESS, f"fixture {n} failed: {broken[n].detail}", "", 0.0)
                   for c in cases if (n := next(iter(broken.keys() & set(c.needs)), None))]
        results += run_cases(runnable, root, jobs, on_result=show)
        return sorted(results, key=lambda r: r.id)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if keep:
            print(f"kept the campaign's files in {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)


def _printer(total: int) -> Callable:
    done = [0]

    def show(r: Result) -> None:
        done[0] += 1
        mark = "" if r.category in PASSING else f"  <-- {r.category}"
        print(f"[{done[0]}/{total}] {r.id}: {r.category} ({r.seconds:.1f}s){mark}", file=sys.stderr, flush=True)
    return show
