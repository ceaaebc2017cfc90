"""The fuzz campaign (graphopt.testing.fuzz): a fast fixed-seed sample in the default run;
the full run (at least 600 cases, about 10 minutes on 2 cores) with ``-m fuzz`` or
GRAPHOPT_FUZZ=full. Each fails on any case that is not a clean error or a correct
acceptance, and prints the report's table and the failing cases."""

from __future__ import annotations

import os

import pytest

from graphopt.testing.fuzz import campaign, report
from graphopt.testing.fuzz.outcome import PASSING


def _check(results) -> None:
    assert results, "the campaign ran no cases"
    if any(r.category not in PASSING for r in results):
        pytest.fail("\n" + report.table(results) + "\n\n" + report.failures(results), pytrace=False)


def test_fuzz_sample():
    _check(campaign.run(full=False, jobs=int(os.environ.get("GRAPHOPT_FUZZ_JOBS", "1"))))


def _full_requested(config) -> bool:
    return "fuzz" in (config.getoption("-m") or "") or os.environ.get("GRAPHOPT_FUZZ") == "full"


@pytest.mark.fuzz
def test_fuzz_full(request):
    if not _full_requested(request.config):
        pytest.skip("the full fuzz campaign runs with -m fuzz or GRAPHOPT_FUZZ=full")
    results = campaign.run(full=True, jobs=int(os.environ.get("GRAPHOPT_FUZZ_JOBS", "2")))
    assert len(results) >= 600
    _check(results)
