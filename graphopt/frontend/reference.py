"""The reference evaluator: how graphopt computes what an ONNX model's outputs should be.
Compile-time passes use it (fold-constants evaluates constant subgraphs with it), and so
does the oracle of the tests (`graphopt.testing.oracle`, which re-exports these names).

onnxruntime with its graph optimizations off is the reference, chosen per op here and
nowhere else: onnxruntime's CPU kernels for the integer matmul/conv ops are not exact on
every CPU of the machine kind. On AVX2 without VNNI, u8 x s8 is multiplied with
``vpmaddubsw``, which saturates pairs of products in int16 (onnxruntime's own docs
recommend ``reduce_range`` on such CPUs), so its MatMulInteger can be off by thousands
where exact int32 arithmetic is the specified result. A graph that contains any of these
ops (`EXACT_REFERENCE_OPS`) is evaluated with exact int32 numpy arithmetic instead (onnx's
ReferenceEvaluator, whose implementations of these ops widen to int32 before multiplying);
never with a loosened tolerance. Ops that lose NaN in onnxruntime: `NAN_REFERENCE_OPS`.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np


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


def nonfinite(feeds: Mapping[str, np.ndarray]) -> bool:
    return any(a.dtype.kind == "f" and not np.isfinite(a).all() for a in feeds.values())


def model_op_types(model) -> set:
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
    ops = model_op_types(model)
    if reference_for(ops) == "numpy":
        return [np.asarray(a) for a in ReferenceEvaluator(model, new_ops=[_exact_matmul_integer()]).run(None, feeds)]
    sess = oracle_session(model.SerializeToString())
    out = list(sess.run(None, feeds))
    if not (nonfinite(feeds) and NAN_REFERENCE_OPS & ops):
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
