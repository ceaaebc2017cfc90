"""``schedule_module``: every unscheduled PrimFunc gets fast math, then the first schedule
rule that applies to it."""

from __future__ import annotations

from .fast_math import fast_math
from .helpers import cannot_schedule
from .registry import rules


def schedule_module(mod, target, skip=(), stats=None):
    from tvm import tirx

    from ..target import host_cpu

    lanes = host_cpu().vector_lanes
    updates = {}
    for gv, func in mod.functions.items():
        if not isinstance(func, tirx.PrimFunc) or gv.name_hint in skip:
            continue
        if func.attrs is not None and "tirx.is_scheduled" in func.attrs:
            continue
        try:
            func = _guarded("fast math", gv, fast_math, func)
        except _Cannot:
            pass  # scalar exp/erf/tanh calls stay: slower, still correct
        for rule in rules():
            try:
                new = _guarded(f"schedule rule {rule.name}", gv, rule.fn, func, lanes)
            except _Cannot:
                new = None  # the rule does not apply here; the next one is tried
            if new is not None:
                updates[gv] = new.with_attr("tirx.is_scheduled", True)
                if stats is not None:
                    stats.scheduled[rule.name] = stats.scheduled.get(rule.name, 0) + 1
                break
    for gv, f in updates.items():
        mod[gv] = f
    if stats is not None:
        stats.kernels = sum(1 for f in mod.functions.values() if isinstance(f, tirx.PrimFunc))
    return mod


class _Cannot(Exception):
    """Raised by `_guarded` for a rule TVM says does not apply."""


def _guarded(what: str, gv, fn, *args):
    """``fn(*args)``; TVM's "cannot schedule this" becomes `_Cannot`, any other exception
    an InternalError naming the rule and kernel (a rule that raises where it should not
    must not silently leave a kernel unscheduled)."""
    from ...errors import InternalError

    try:
        return fn(*args)
    except cannot_schedule() as e:
        raise _Cannot(str(e)) from e
    except Exception as e:
        raise InternalError(f"{what} on kernel {gv.name_hint!r}", e) from e
