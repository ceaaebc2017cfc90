"""The fuzz harness itself: the classifier gives each kind of outcome its one category,
the pool tells a crash and a hang from an answer and keeps going, and the catalog covers
the issue's findings with at least 600 cases."""

from __future__ import annotations

import pytest

from graphopt.testing.fuzz import catalog, outcome
from graphopt.testing.fuzz.outcome import (ACCEPT, ACCEPTED, ACCEPTED_INVALID, CLEAN, CORRUPT_LATER, CRASH, EITHER, ERROR,
                                           HANG, PARTIAL, READ_OUTSIDE, REFUSED_VALID, TRACEBACK, Call, Obs, classify)


def _obs(status="ok", message="", expect=ERROR, **flags):
    o = Obs(expect=expect, **flags)
    o.calls.append(Call("call", status, message))
    return o


@pytest.mark.parametrize("obs, want", [
    (_obs("error", "model.onnx: truncated"), CLEAN),
    (_obs("error", "x: bad", expect=EITHER), CLEAN),
    (_obs("error", "x: bad", expect=ACCEPT), REFUSED_VALID),
    (_obs("error", ""), TRACEBACK),
    (_obs("bug", "KeyError: 'x'"), TRACEBACK),
    (_obs("crash", "killed by SIGSEGV"), CRASH),
    (_obs("hang", "past 60 s"), HANG),
    (_obs(expect=ACCEPT), ACCEPTED),
    (_obs(expect=EITHER), ACCEPTED),
    (_obs(expect=ERROR), ACCEPTED_INVALID),
    (_obs(expect=ACCEPT, wrong="NaN became 0"), ACCEPTED_INVALID),
    (_obs("error", "x: bad", partial=".art.tmp left"), PARTIAL),
    (_obs(expect=ACCEPT, read_outside="read ../secret"), READ_OUTSIDE),
    (_obs("error", "x: bad", read_outside="read ../secret"), READ_OUTSIDE),
    (_obs(expect=ACCEPT, corrupt_later="the next compile failed"), CORRUPT_LATER),
])
def test_classify_gives_one_category(obs, want):
    assert classify(obs)[0] == want


@pytest.mark.parametrize("rc, stderr, want", [
    (1, "graphopt: error: m.onnx: truncated\n", "error"),
    (1, "[12:00] Warning: Scope Saving:\ngraphopt: error: m.onnx: truncated\n", "error"),
    (3, "graphopt: internal error in fold: KeyError: 'x'\n", "bug"),
    (1, "Traceback (most recent call last):\n  File ...\nValueError: x\n", "bug"),
    (0, "", "ok"),
    (-11, "", "crash"),
    (1, "", "bug"),
    (2, "usage: graphopt ...\ngraphopt: error: unrecognized arguments: --x\n", "error"),
])
def test_cli_status(rc, stderr, want):
    assert outcome._cli_status(rc, stderr)[0] == want


def test_pool_tells_crash_and_hang_apart_and_recovers(tmp_path):
    from graphopt.testing.fuzz import selftest
    from graphopt.testing.fuzz.runner import run_cases

    for sub in ("cases", "artifacts", "cache"):
        (tmp_path / sub).mkdir()
    got = {r.id.split("/")[1]: r.category for r in run_cases(selftest.cases(), tmp_path, jobs=2, warm=False)}
    assert got == {"segfault": CRASH, "hang": HANG, "user-error": CLEAN, "bug": TRACEBACK, "accepted": ACCEPTED,
                   "accepted-invalid": ACCEPTED_INVALID, "after-crash": ACCEPTED, "broken": outcome.HARNESS}


def test_catalog_has_600_cases_with_unique_ids():
    cases = catalog.all_cases()
    assert len(cases) >= 600
    assert len({c.id for c in cases}) == len(cases)
    sample = [c for c in cases if c.sample]
    assert 50 <= len(sample) <= 200
    assert not [c.id for c in sample if c.family in ("kill-9", "tuning-db")]


# The findings (issue 10), each a case or a family of cases in the catalog.
FINDINGS = [
    r"artifact-tamper/files-dotdot", r"artifact-tamper/stage-lib-dotdot\.rehash", r"artifact-tamper/stage-params-absolute",
    r"artifact-tamper/library-symlink-out", r"extdata/unrooted-bytes", r"extdata/unrooted-proto", r"extdata/dotdot\.",
    r"extdata/absolute\.", r"extdata/symlink-file\.", r"runtime-nan/mlp\.nan", r"onnx-input-initializer/ir4\.opt",
    r"onnx-input-initializer/ir10\.compile", r"onnx-spec/huge-dim-used\.show", r"onnx-spec/huge-dim-used\.opt",
    r"ir-corrupt/b64-bad-char", r"ir-corrupt/bad-json-escape", r"ir-corrupt/string-for-ints", r"ir-corrupt/unknown-op",
    r"onnx-spec/negative-dim-input", r"onnx-spec/non-utf8-node-name", r"onnx-spec/non-utf8-attr", r"tuning-db/.*trials1",
    r"artifact-tamper/params-float64\.rehash", r"artifact-tamper/params-missing-key", r"artifact-tamper/params-truncated",
    r"artifact-tamper/library-other-model\.rehash", r"runtime-inputs/big-endian", r"runtime-cli/mlp\.big-endian",
    r"output-paths/run-o-existing-file", r"ir-corrupt/b64-equals-inside", r"onnx-spec/gather-const-index",
    r"onnx-spec/output-shape-contradicts", r"runtime-indices/gather\.big", r"runtime-indices/gather_elements\.",
    r"runtime-indices/gather_nd\.", r"runtime-indices/scatter_nd\.", r"output-paths/fsize-compile", r"kill-9/compile@",
    r"kill-9/tune@",
]


@pytest.mark.parametrize("pattern", FINDINGS)
def test_every_finding_is_a_case(pattern):
    import re

    assert any(re.match(pattern, c.id) for c in catalog.all_cases()), pattern
