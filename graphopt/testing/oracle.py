"""The oracle: run a graph on the reference (`graphopt.frontend.reference`: onnxruntime with
its graph optimizations off, exact numpy for the ops onnxruntime gets wrong, chosen per op
there and nowhere else) and compare two sets of outputs under per-dtype tolerances kept in
one place (`TOLERANCES`). The reference's names are re-exported here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional, Sequence, Union

import numpy as np

from ..frontend.reference import (EXACT_REFERENCE_OPS, NAN_REFERENCE_OPS, evaluate_model, model_op_types,  # noqa: F401
                                  nonfinite, oracle_session, reference_for)
from ..ir import DType, Graph, TensorType


@dataclass(frozen=True)
class Tolerance:
    rtol: float
    atol: float


# One place for every numeric tolerance in graphopt. Exact for ints and bools.
TOLERANCES: dict[DType, Tolerance] = {
    DType.FLOAT64: Tolerance(1e-9, 1e-12),
    DType.FLOAT32: Tolerance(1e-4, 1e-5),
    DType.FLOAT16: Tolerance(1e-2, 1e-3),
    DType.BFLOAT16: Tolerance(2e-2, 1e-2),
}


# Whole deep networks (logits after dozens of layers, random weights) compared across
# systems that sum in different orders, or after rewrites that round folded weights.
MODEL_TOLERANCE = Tolerance(rtol=1e-3, atol=1e-4)


def tolerance(dtype: DType) -> Tolerance:
    return TOLERANCES.get(dtype, Tolerance(0.0, 0.0))


class OracleError(RuntimeError):
    """onnxruntime refused or failed to run the exported graph."""


def run_reference(graph: Graph, inputs: Union[Mapping[str, np.ndarray], Sequence[np.ndarray]]) -> list[np.ndarray]:
    """Run ``graph`` on the oracle (onnxruntime, optimizations disabled; exact numpy for the
    ops in `EXACT_REFERENCE_OPS`); inputs by name or in order."""
    from ..frontend.onnx_export import export_onnx

    model = export_onnx(graph)
    if not isinstance(inputs, Mapping):
        inputs = {v.name: a for v, a in zip(graph.inputs, inputs)}
    try:
        return evaluate_model(model, inputs)
    except Exception as e:
        which = reference_for(model_op_types(model), nonfinite({k: np.asarray(v) for k, v in inputs.items()}))
        raise OracleError(f"{which} could not run graph {graph.name!r}: {str(e).strip().splitlines()[0]}") from e


@dataclass
class Mismatch:
    output: int
    name: str
    detail: str

    def __str__(self) -> str:
        return f"output {self.output} ({self.name}): {self.detail}"


def compare_outputs(expected: Sequence[np.ndarray], actual: Sequence[np.ndarray],
                    names: Optional[Sequence[str]] = None) -> list[Mismatch]:
    """Every way ``actual`` differs from ``expected`` beyond the dtype's tolerance."""
    names = list(names) if names is not None else [str(i) for i in range(len(expected))]
    out: list[Mismatch] = []
    if len(expected) != len(actual):
        return [Mismatch(-1, "*", f"{len(expected)} outputs expected, {len(actual)} given")]
    for i, (e, a) in enumerate(zip(expected, actual)):
        e, a = np.asarray(e), np.asarray(a)
        if e.shape != a.shape:
            out.append(Mismatch(i, names[i], f"shape {a.shape}, expected {e.shape}"))
            continue
        if e.dtype != a.dtype:
            out.append(Mismatch(i, names[i], f"dtype {a.dtype}, expected {e.dtype}"))
            continue
        if e.dtype.kind in "OUS":
            if not np.array_equal(e, a):
                out.append(Mismatch(i, names[i], "strings differ"))
            continue
        dt = DType.from_numpy(e.dtype)
        tol = tolerance(dt)
        if dt.is_float:
            ok = np.isclose(a, e, rtol=tol.rtol, atol=tol.atol, equal_nan=True)
        else:
            ok = a == e
        if not np.all(ok):
            bad = int(np.size(ok) - np.count_nonzero(ok))
            with np.errstate(invalid="ignore"):
                err = np.abs(a.astype(np.float64) - e.astype(np.float64))
            finite = ~ok & np.isfinite(err)
            worst = float(err[finite].max()) if finite.any() else 0.0
            detail = f"{bad} of {e.size} elements differ; max abs error {worst:.3g} (rtol {tol.rtol}, atol {tol.atol})"
            if dt.is_float:
                lost = int(np.count_nonzero(np.isnan(e) & ~np.isnan(a)))
                made = int(np.count_nonzero(~np.isnan(e) & np.isnan(a)))
                if lost:
                    detail += f"; {lost} number(s) where the oracle has NaN"
                if made:
                    detail += f"; {made} NaN where the oracle has a number"
            out.append(Mismatch(i, names[i], detail))
    return out


def assert_close(expected: Sequence[np.ndarray], actual: Sequence[np.ndarray], names=None) -> None:
    bad = compare_outputs(expected, actual, names)
    if bad:
        raise AssertionError("outputs differ from the oracle:\n  " + "\n  ".join(str(m) for m in bad))


def random_inputs(graph: Graph, seed: int = 0, dims: Optional[Mapping[str, int]] = None) -> dict[str, np.ndarray]:
    """Random inputs for a graph: floats in [-1, 1], ints in [0, 4], bools; symbolic dims
    take their value from ``dims`` (default 2)."""
    rng = np.random.default_rng(seed)
    dims = dict(dims or {})
    feeds = {}
    for v in graph.inputs:
        feeds[v.name] = random_array(v.type, rng, dims)
    return feeds


def random_array(t: TensorType, rng: np.random.Generator, dims: Optional[Mapping[str, int]] = None) -> np.ndarray:
    if t.shape is None:
        raise ValueError(f"cannot make a random input of unknown rank ({t})")
    shape = tuple(d if isinstance(d, int) else int((dims or {}).get(d, 2)) for d in t.shape)
    if t.dtype.is_float:
        return rng.uniform(-1, 1, shape).astype(t.dtype.numpy)
    if t.dtype is DType.BOOL:
        return rng.integers(0, 2, shape).astype(bool)
    if t.dtype is DType.STRING:
        return np.array(rng.choice(["a", "bc", "def"], shape), dtype=object)
    return rng.integers(0, 5, shape).astype(t.dtype.numpy)
