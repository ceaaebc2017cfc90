"""What the cases compare against: the spec (onnx's full check, then onnxruntime) decides
what a damaged model should get; the oracle (onnxruntime, optimizations off) decides
whether accepted numbers are right."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from .outcome import EITHER, ERROR

# An input bigger than this is not fed to the oracle: a bit flip can declare any size.
_MAX_FEED = 1 << 22
# Declared tensors bigger than this are refused before onnx's checker sees them: its shape
# inference is what hangs on them (the finding), and no valid small model has them.
_MAX_DECLARED = 1 << 28


def _numel(dims) -> int:
    n = 1
    for d in dims:
        n *= max(int(d), 0)
    return n


def spec_expect(data: bytes) -> tuple:
    """(expectation, why) for a model given as bytes: ERROR when onnx cannot parse it, its
    full check rejects it, or onnxruntime refuses it; EITHER otherwise (acceptance with the
    oracle's numbers, or a clean error)."""
    import onnx

    try:
        m = onnx.load_from_string(data)
    except Exception as e:  # noqa: BLE001 - any parse failure means invalid
        return ERROR, f"onnx cannot parse it ({type(e).__name__})"
    if any(_numel(t.dims) > _MAX_DECLARED for t in m.graph.initializer):
        return ERROR, "an initializer declares more elements than it can hold"
    try:
        onnx.checker.check_model(m, full_check=True)
    except Exception as e:  # noqa: BLE001
        return ERROR, f"onnx's full check rejects it: {str(e).splitlines()[0][:200]}"
    feeds = feeds_for(m)
    if feeds is None:
        return EITHER, "valid, inputs too big to run"
    try:
        run_ort(data, feeds)
    except Exception as e:  # noqa: BLE001
        return ERROR, f"onnxruntime refuses it: {str(e).splitlines()[0][:200]}"
    return EITHER, "onnx's full check and onnxruntime accept it"


def feeds_for(model, seed: int = 0) -> Optional[dict]:
    from . import models

    for vi in model.graph.input:
        dims = [d.dim_value for d in vi.type.tensor_type.shape.dim]
        if _numel(dims) > _MAX_FEED:
            return None
    try:
        return models.inputs_for(model, seed)
    except Exception:  # noqa: BLE001 - an input type numpy cannot make: nothing to feed
        return None


def run_ort(data: bytes, feeds: dict) -> list:
    """The oracle's outputs: onnxruntime, or numpy for the ops whose onnxruntime kernels
    are inexact (the oracle's one place decides, `graphopt.testing.oracle.evaluate_model`)."""
    import onnx

    from graphopt.testing.oracle import evaluate_model

    model = onnx.load_from_string(data)
    names = {i.name for i in model.graph.input} - {t.name for t in model.graph.initializer}
    return evaluate_model(model, {k: v for k, v in feeds.items() if k in names})


def compare(expected, actual, what: str) -> Optional[str]:
    """None when ``actual`` matches the oracle's ``expected`` (NaN where it has NaN)."""
    from graphopt.testing import compare_outputs

    bad = compare_outputs([np.asarray(e) for e in expected], [np.asarray(a) for a in actual])
    return f"{what}: " + "; ".join(map(str, bad[:3])) if bad else None


def exported_matches(original: bytes, exported, feeds: Optional[dict]) -> Optional[str]:
    """None when graphopt's exported model passes onnx's full check and gives the original
    model's numbers on onnxruntime; else what is wrong."""
    import onnx

    try:
        onnx.checker.check_model(exported, full_check=True)
    except Exception as e:  # noqa: BLE001
        return f"graphopt's output fails onnx's full check: {str(e).splitlines()[0][:200]}"
    if feeds is None:
        return None
    try:
        want = run_ort(original, feeds)
    except Exception:  # noqa: BLE001 - the original does not run: no numbers to compare
        return None
    try:
        got = run_ort(exported.SerializeToString(), feeds)
    except Exception as e:  # noqa: BLE001
        return f"graphopt's output does not run on onnxruntime: {str(e).splitlines()[0][:200]}"
    return compare(want, got, "graphopt's output differs from the oracle")


def leftovers(folder: Path, keep: set) -> list:
    """Names in ``folder`` other than ``keep``: temporaries or partial outputs left behind."""
    return sorted(p.name for p in Path(folder).iterdir() if p.name not in keep)
