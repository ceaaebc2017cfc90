"""Rule ``generic``, the last: inline elementwise producers into their consumers, then for
each remaining block parallelize its leading spatial loops and vectorize an innermost
spatial loop."""

from __future__ import annotations

from .helpers import generic_rest, inline_spatial_producers, schedule_of
from .registry import register_rule


@register_rule("generic", order=90)
def generic_rule(func, lanes):
    sch = schedule_of(func)
    inline_spatial_producers(sch, func)
    generic_rest(sch, func, lanes, exclude=set())
    return sch.mod["main"]
