"""Every case of the campaign, by family; the default sample is the cases marked
``sample`` (a fixed seed picks the same ones every run)."""

from __future__ import annotations

import re
from typing import Optional

SEED = 20261201


def all_cases(seed: int = SEED) -> list:
    from . import fam_artifact, fam_extdata, fam_ir, fam_onnx, fam_paths, fam_runtime, fam_spec, fam_tuning

    out = []
    for fam in (fam_onnx, fam_spec, fam_ir, fam_extdata, fam_runtime, fam_artifact, fam_paths, fam_tuning):
        out += fam.cases(seed)
    ids = [c.id for c in out]
    dup = {i for i in ids if ids.count(i) > 1}
    if dup:
        raise AssertionError(f"duplicate fuzz case ids: {sorted(dup)[:5]}")
    return out


def select(full: bool, only: Optional[str] = None, seed: int = SEED) -> list:
    cases = all_cases(seed)
    if not full:
        cases = [c for c in cases if c.sample]
    if only:
        rx = re.compile(only)
        cases = [c for c in cases if rx.search(c.id)]
    return cases
