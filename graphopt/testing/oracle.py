"""The oracle: run a graph on onnxruntime with its graph optimizations off, and compare
two sets of outputs under per-dtype tolerances kept in one place (`TOLERANCES`).

The reference is chosen per op, here and nowhere else (`EXACT_REFERENCE_OPS`):
onnxruntime's CPU kernels for the integer matmul/conv ops are not exact on every CPU of
the machine kind. On AVX2 without VNNI, u8 x s8 is multiplied with ``vpmaddubsw``, which
saturates pairs of products in int16 (onnxruntime's own docs recommend ``reduce_range`` on
such CPUs), so its MatMulInteger can be off by thousands where exact int32 arithmetic is
the specified result. A graph that contains any of these ops is evaluated with exact int32
numpy arithmetic instead (onnx's ReferenceEvaluator, whose implementations of these ops
widen to int32 before multiplying); never with a loosened tolerance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional, Sequence, Union

import numpy as np

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


def oracle_session(model_bytes: bytes):
    """An onnxruntime session configured as the oracle: graph optimizations off, one thread
    (deterministic), CPU only."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])


# Ops whose onnxruntime CPU kernel is inexact on some CPUs of the machine kind (see the
# module's docstring): a graph containing one is evaluated in exact numpy arithmetic.
EXACT_REFERENCE_OPS = frozenset({"MatMulInteger", "ConvInteger"})


# Ops whose onnxruntime CPU kernel loses NaN or infinities (onnxruntime 1.31, measured
# 2026-12-02: ReduceMax of a row holding NaN, +inf and 2.61 gives 2.61; MaxPool windows
# holding NaN give a number; Clip without a max turns +inf into the largest float). When an
# input holds NaN or an infinity, each output computed through one of them takes numpy's
# value (onnx's ReferenceEvaluator, with a NaN-keeping MaxPool), as the ONNX spec and numpy
# propagate them; the other outputs keep onnxruntime's (the reference drops NaN in its
# AveragePool and LpPool, so it is no oracle for those).
NAN_REFERENCE_OPS = frozenset({"ReduceMax", "ReduceMin", "MaxPool", "GlobalMaxPool", "ArgMax", "ArgMin", "Hardmax",
                               "Clip"})


def reference_for(op_types, nonfinite_inputs: bool = False) -> str:
    """``"numpy"`` when any of ``op_types`` (default-domain op names) needs the exact
    reference (or, with ``nonfinite_inputs``, the NaN-keeping one), else ``"onnxruntime"``."""
    ops = set(op_types)
    if EXACT_REFERENCE_OPS & ops or (nonfinite_inputs and NAN_REFERENCE_OPS & ops):
        return "numpy"
    return "onnxruntime"


def _nonfinite(feeds: Mapping[str, np.ndarray]) -> bool:
    return any(a.dtype.kind == "f" and not np.isfinite(a).all() for a in feeds.values())


def _model_op_types(model) -> set:
    ops: set = set()

    def visit(g):
        for n in g.node:
            if n.domain in ("", "ai.onnx"):
                ops.add(n.op_type)
            for a in n.attribute:
                if a.g is not None and a.HasField("g"):
                    visit(a.g)
                for sub in a.graphs:
                    visit(sub)

    visit(model.graph)
    return ops


def evaluate_model(model, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """Run an onnx.ModelProto with the reference its ops call for: onnxruntime with
    optimizations off; exact numpy arithmetic for a graph with an op of
    `EXACT_REFERENCE_OPS`; and, when an input holds NaN or an infinity, numpy's value for
    each output computed through an op of `NAN_REFERENCE_OPS`. Raises whatever the runtime
    raises."""
    from onnx.reference import ReferenceEvaluator

    feeds = {k: np.asarray(v) for k, v in feeds.items()}
    ops = _model_op_types(model)
    if reference_for(ops) == "numpy":
        return [np.asarray(a) for a in ReferenceEvaluator(model, new_ops=[_exact_matmul_integer()]).run(None, feeds)]
    sess = oracle_session(model.SerializeToString())
    out = list(sess.run(None, feeds))
    if not (_nonfinite(feeds) and NAN_REFERENCE_OPS & ops):
        return out
    through = _outputs_through(model, NAN_REFERENCE_OPS)
    ref = ReferenceEvaluator(model, new_ops=[_nan_max_pool()]).run(None, feeds)
    return [np.asarray(ref[i]) if i in through else a for i, a in enumerate(out)]


def _outputs_through(model, op_types) -> set:
    """Indices of the graph outputs computed through a node of ``op_types`` (a node holding
    subgraphs counts as all of its inner ops)."""
    through: set = set()  # value names computed through such a node (nodes are in topological order)
    for n in model.graph.node:
        inner = {m.op_type for a in n.attribute for g in ([a.g] if a.HasField("g") else []) + list(a.graphs)
                 for m in g.node}
        if n.op_type in op_types or inner & op_types or any(i in through for i in n.input):
            through.update(o for o in n.output if o)
    return {i for i, o in enumerate(model.graph.output) if o.name in through}


def _exact_matmul_integer():
    """MatMulInteger in int32, with the spec's per-row zero point of A (an M-vector for an
    [.., M, K] A), which onnx's own reference implementation broadcasts along K instead."""
    from onnx.reference.op_run import OpRun

    class MatMulInteger(OpRun):
        def _run(self, a, b, a_zero_point=None, b_zero_point=None):
            a32, b32 = a.astype(np.int32), b.astype(np.int32)
            if a_zero_point is not None:
                zp = np.asarray(a_zero_point).astype(np.int32)
                a32 = a32 - (zp[..., None] if zp.ndim >= 1 else zp)
            if b_zero_point is not None:
                b32 = b32 - np.asarray(b_zero_point).astype(np.int32)
            return (np.matmul(a32, b32),)

    return MatMulInteger


def _nan_max_pool():
    """MaxPool that keeps NaN: onnx's reference pads with NaN and drops every NaN from a
    window. A window holding a NaN of the input gives NaN (a second pool over the NaN mask
    finds them); the rest is the reference's own MaxPool on the input with NaN as +inf."""
    from onnx.reference.ops.op_max_pool import MaxPool as _Ref

    class MaxPool(_Ref):
        def _run(self, x, **kw):
            nan = np.isnan(x)
            if not nan.any():
                return super()._run(x, **kw)
            res = super()._run(np.where(nan, np.inf, x).astype(x.dtype), **kw)
            hit = super()._run(nan.astype(x.dtype), **kw)[0] > 0
            return (np.where(hit, np.nan, res[0]).astype(x.dtype),) + tuple(res[1:])

    return MaxPool


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
        which = reference_for(_model_op_types(model), _nonfinite({k: np.asarray(v) for k, v in inputs.items()}))
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
