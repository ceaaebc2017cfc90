"""MetaSchedule tuning with a persistent database: not written yet.

`existing_database` returns None (builds use graphopt's default schedules), and asking for
a tuning budget raises a clear error rather than compiling silently untuned."""

from __future__ import annotations

from ..errors import GraphoptError


def existing_database(target, target_name, cache_dir=None):
    return None


def tune(mod, target, target_name, trials=0, minutes=None, cache_dir=None, progress=False):
    raise GraphoptError("tuning (--tune-trials/--tune-time) is not implemented yet in this build of graphopt; "
                        "compile without it to use graphopt's default schedules")
