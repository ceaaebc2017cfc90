"""Hypothesis profiles. Under CI (the CI environment variable set) examples are drawn from
a fixed seed, so a run is repeatable and a red CI can be replayed; local runs draw fresh
examples every time and explore further (and GRAPHOPT_HYPOTHESIS_EXAMPLES raises the count)."""

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("dev", print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
