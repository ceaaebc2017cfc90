"""Golden before/after text for every pass: a changed case and an unchanged case.

The after files are compared after a print -> parse -> print round trip. Regenerate them
with ``GRAPHOPT_UPDATE_GOLDEN=1 pytest tests/passes/test_golden.py`` (and read the diff)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from graphopt.ir.parser import parse_ir
from graphopt.ir.printer import print_ir
from graphopt.testing import assert_close, random_inputs, run_reference

from passes_testutil import run_checked

GOLDEN = Path(__file__).parent / "golden"
CASES = [
    ("fold_constants", "fold-constants", True), ("fold_constants.unchanged", "fold-constants", False),
    ("dce", "dce", True), ("dce.unchanged", "dce", False),
    ("cse", "cse", True), ("cse.unchanged", "cse", False),
    ("simplify", "simplify", True), ("simplify.unchanged", "simplify", False),
    ("fuse_conv_bn", "fuse-conv-bn", True), ("fuse_conv_bn.unchanged", "fuse-conv-bn", False),
]


def _round_trip(text: str) -> str:
    return print_ir(parse_ir(text))


@pytest.mark.parametrize("case,pass_name,changes", CASES, ids=[c[0] for c in CASES])
def test_golden(case, pass_name, changes):
    before = (GOLDEN / f"{case}.before.ir").read_text()
    g = parse_ir(before)
    assert print_ir(g) == _round_trip(before)
    inputs = random_inputs(g, seed=1, dims={"N": 3})
    run = run_checked(g, [pass_name], inputs)
    assert run.records[0].changed is changes
    got = _round_trip(print_ir(g))
    after = GOLDEN / f"{case}.after.ir"
    if os.environ.get("GRAPHOPT_UPDATE_GOLDEN"):
        after.write_text(got)
    assert got == _round_trip(after.read_text()), f"{case}: differs from {after.name}"
    if not changes:
        assert got == _round_trip(before)
