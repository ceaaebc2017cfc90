"""Moved to `graphopt.rewrite`; this name stays until passes/fold_constants.py imports the
new place."""

from ..rewrite import *  # noqa: F401,F403
from ..rewrite import erase_dead  # noqa: F401
