"""Find the first rewrite application that changes the numbers.

Every rewrite a pass applies is counted across the pipeline (`PassContext.allow`), and
``bisect_limit=N`` stops applying after N. With 0 applications the graph is the imported
one; with all of them it is the pipeline's result. If that result's numbers differ from
the imported graph's on the oracle, a binary search over N finds the smallest N whose
result differs: application N is the culprit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional, Sequence

import numpy as np

from ..ir import Graph
from .api import run_pipeline
from .base import Application
from .pipelines import PipelineLike


@dataclass
class BisectResult:
    total: int                          # applications in the full pipeline run
    culprit: Optional[Application]      # None: the full run keeps the numbers
    trials: list[tuple[int, bool]] = field(default_factory=list)  # (limit, numbers changed)
    mismatch: str = ""

    def format(self) -> str:
        if self.culprit is None and self.mismatch:
            return f"the numbers differ even with no rewrite applied: {self.mismatch}\n"
        if self.culprit is None:
            return (f"no application changes the numbers ({self.total} rewrite applications, "
                    f"{len(self.trials)} trial runs)\n")
        return (f"first application that changes the numbers: #{self.culprit.index} of {self.total} "
                f"(found in {len(self.trials)} trial runs)\n"
                f"  rule:  {self.culprit.rule}\n"
                f"  pass:  {self.culprit.pass_name} (invocation {self.culprit.invocation})\n"
                f"  nodes: {', '.join(self.culprit.nodes) or '-'}\n"
                + (f"  rewrite:\n    {self.culprit.detail.replace(chr(10), chr(10) + '    ')}\n" if self.culprit.detail else "")
                + f"  numbers: {self.mismatch}\n")


def bisect(load: Callable[[], Graph], pipeline: PipelineLike = "O1", *,
           inputs: Optional[Mapping[str, np.ndarray]] = None, seed: int = 0,
           disable: Sequence[str] = (), options=None, where: str = "",
           log: Optional[Callable[[str], None]] = None) -> BisectResult:
    """``load()`` must return a fresh copy of the graph each time it is called."""
    from ..testing.oracle import OracleError, compare_outputs, random_inputs, run_reference

    g0 = load()
    feeds = dict(inputs) if inputs is not None else random_inputs(g0, seed=seed)
    reference = run_reference(g0, feeds)
    names = [o.name for o in g0.outputs]

    def trial(limit: Optional[int]):
        g = load()
        run = run_pipeline(g, pipeline, bisect_limit=limit, disable=disable, options=options, where=where)
        try:
            got = run_reference(g, feeds)
        except OracleError as e:
            return run, str(e)
        bad = compare_outputs(reference, got, names)
        return run, "; ".join(str(m) for m in bad[:3])

    result = BisectResult(0, None)
    full, bad = trial(None)
    result.total = full.ctx.count
    result.trials.append((result.total, bool(bad)))
    if log:
        log(f"full run: {result.total} applications, numbers {'differ' if bad else 'agree'}")
    if not bad:
        return result
    lo, hi, hi_run, hi_bad = 0, result.total, full, bad
    while hi - lo > 1:
        mid = (lo + hi) // 2
        run, bad = trial(mid)
        result.trials.append((mid, bool(bad)))
        if log:
            log(f"limit {mid}: numbers {'differ' if bad else 'agree'}")
        if bad:
            hi, hi_run, hi_bad = mid, run, bad
        else:
            lo = mid
    apps = hi_run.ctx.applications
    result.culprit = apps[hi - 1] if len(apps) >= hi else None
    result.mismatch = hi_bad
    return result
