"""A fuzz case: an id, a family, the function that runs it (by name, so that a spawned
worker can find it) and its arguments (small, picklable: the damage is rebuilt in the
worker from a seed, an offset or a name, never shipped as bytes)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Case:
    id: str
    family: str
    fn: str                      # "graphopt.testing.fuzz.fam_x:function"
    args: dict = field(default_factory=dict)
    what: str = ""               # the command or call, for the report
    timeout: float = 60.0        # seconds before the case counts as a hang
    sample: bool = False         # part of the default (fast) run
    needs: tuple = ()            # fixture names (compiled base artifacts) it reads

    def resolve(self):
        mod, _, name = self.fn.partition(":")
        return getattr(importlib.import_module(mod), name)


def case(family: str, name: str, fn, what: str = "", **kw) -> Case:
    """A Case whose ``fn`` is given as the function itself."""
    args = kw.pop("args", {})
    return Case(id=f"{family}/{name}", family=family, fn=f"{fn.__module__}:{fn.__name__}", args=args,
                what=what or f"{fn.__name__}({', '.join(f'{k}={v!r}' for k, v in args.items())})", **kw)
