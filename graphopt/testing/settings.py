"""Knobs for property-based tests, read from the environment.

``GRAPHOPT_HYPOTHESIS_EXAMPLES=N`` raises the number of examples of every property test
that asks `examples` for its count (the default run keeps each test's own default):

    @settings(max_examples=examples(200), deadline=None)
    @given(strategies.graphs())
    def test_something(g): ...
"""

from __future__ import annotations

import os

ENV_EXAMPLES = "GRAPHOPT_HYPOTHESIS_EXAMPLES"


def examples(default: int) -> int:
    """The number of examples a property test should run: ``default``, or the value of
    ``$GRAPHOPT_HYPOTHESIS_EXAMPLES`` when that is set to a positive integer."""
    raw = os.environ.get(ENV_EXAMPLES, "").strip()
    if not raw:
        return default
    try:
        n = int(raw)
    except ValueError:
        raise ValueError(f"${ENV_EXAMPLES} must be a positive integer, got {raw!r}") from None
    if n <= 0:
        raise ValueError(f"${ENV_EXAMPLES} must be a positive integer, got {raw!r}")
    return n
