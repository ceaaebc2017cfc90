"""The default schedule rules, in the order they are tried. A rule is a function
``(func, lanes) -> scheduled PrimFunc or None`` (None: it does not apply) with a name (the
key of BuildStats.scheduled); each rule's module registers it. Tests replace a rule in
`RULES` to break it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Rule:
    name: str
    fn: Callable
    order: int       # rules run by increasing order


RULES: dict[str, Rule] = {}


def register_rule(name: str, order: int):
    """Decorator: ``fn`` is the schedule rule ``name``, tried at position ``order``."""

    def deco(fn):
        if name in RULES:
            raise ValueError(f"schedule rule {name!r} is registered twice")
        RULES[name] = Rule(name, fn, order)
        return fn

    return deco


def rules() -> list[Rule]:
    """The rules in the order they are tried."""
    return sorted(RULES.values(), key=lambda r: r.order)
