"""The compiled base artifacts, built once per run (as setup cases in the pool) and then
copied and tampered, or loaded and fed bad inputs, by the cases."""

from __future__ import annotations

from contextlib import contextmanager

from . import models
from .case import Case, case
from .outcome import ACCEPT, Obs

# name: (base model, optimize options)
FIXTURES = {
    "mlp": ("mlp", {}),
    "tiny_cnn": ("tiny_cnn", {}),
    "numerics": ("numerics", {"opt_level": "O1"}),
    "gather": ("gather", {}),
    "gather_elements": ("gather_elements", {}),
    "gather_nd": ("gather_nd", {}),
    "scatter_nd": ("scatter_nd", {}),
    "staged": ("staged", {"fallback": "ort"}),
}


def build(ctx, name: str) -> Obs:
    import graphopt

    base, opts = FIXTURES[name]
    obs = Obs(expect=ACCEPT)
    with obs.call(f"graphopt.optimize({base}).save()"), _gap("Det" if opts.get("fallback") else None):
        m = graphopt.optimize(models.model_bytes(base), **opts)
        m.save(ctx.root / "artifacts" / name)
    return obs


@contextmanager
def _gap(op):
    """Every op graphopt imports has a lowering; a staged artifact needs one taken out."""
    if op is None:
        yield
        return
    from graphopt.codegen.lower.registry import TABLE

    fn = TABLE.pop(op)
    try:
        yield
    finally:
        TABLE[op] = fn


def setup_cases(names) -> list:
    return [case("setup", n, build, args={"name": n}, timeout=400) for n in names]


def needed(cases: list[Case]) -> list:
    return sorted({n for c in cases for n in c.needs})
