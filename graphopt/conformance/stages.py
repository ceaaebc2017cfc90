"""What each conformance stage does with one test case, and how its result is classified.

A stage returns a status (pass, mismatch, unsupported) and a detail line; anything it
raises that is not a clean GraphoptError is a crash, and so is a worker that dies or hangs
(the runner counts those). Stages:

- ``ort``: onnxruntime (graph optimizations off) on the case's model as shipped;
- ``O0``: graphopt import then export, run on onnxruntime (onnx's ReferenceEvaluator
  where onnxruntime lacks the kernel);
- ``O1``: as O0 with the -O1 pipeline in between;
- ``tvm``: import, -O1 where it exists, then graphopt's TVM lowering on the CPU.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np

PASS, MISMATCH, UNSUPPORTED, CRASH = "pass", "mismatch", "unsupported", "crash"


class Unsupported(Exception):
    """The system under test says, cleanly, that it cannot run this case."""


def compare(expected: Sequence, actual: Sequence, rtol: float, atol: float) -> Optional[str]:
    """None when ``actual`` matches ``expected`` the way onnx's backend tests check it."""
    expected = [_feed(e) for e in expected]
    if len(expected) != len(actual):
        return f"{len(actual)} outputs, expected {len(expected)}"
    for i, (e, a) in enumerate(zip(expected, actual)):
        e, a = np.asarray(e), np.asarray(a)
        if e.dtype == object or a.dtype == object:
            if e.shape != a.shape or not all(x == y for x, y in zip(e.reshape(-1), a.reshape(-1))):
                return f"output {i}: values differ"
            continue
        if e.shape != a.shape:
            return f"output {i}: shape {a.shape}, expected {e.shape}"
        if e.dtype != a.dtype:
            return f"output {i}: dtype {a.dtype}, expected {e.dtype}"
        try:
            np.testing.assert_allclose(a, e, rtol=rtol, atol=atol, equal_nan=True)
        except AssertionError as err:
            lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
            return f"output {i}: " + "; ".join(lines[1:4])
    return None


def _ort_run(model_bytes: bytes, feeds: dict) -> list:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = 1
    so.log_severity_level = 4
    try:
        sess = ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])
    except Exception as e:
        raise Unsupported(f"onnxruntime cannot load it: {str(e).strip().splitlines()[0][:200]}") from None
    return sess.run(None, feeds)


def _run_anywhere(model, feeds: dict) -> list:
    """onnxruntime, or onnx's ReferenceEvaluator where onnxruntime has no kernel."""
    try:
        return _ort_run(model.SerializeToString(), feeds)
    except Exception:  # cannot load, or cannot take the inputs (bf16 has no numpy type there)
        from onnx.reference import ReferenceEvaluator

        return list(ReferenceEvaluator(model).run(None, feeds))


def _feeds(model, inputs: Sequence) -> dict:
    names = [i.name for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    return {n: _feed(x) for n, x in zip(names, inputs)}


def _feed(x):
    """A test input as onnxruntime takes it: numpy arrays (scalars too); tensors that numpy
    cannot hold natively (bf16, float8) come as TensorProto and are converted by onnx."""
    import onnx
    from onnx import numpy_helper

    if isinstance(x, onnx.TensorProto):
        return numpy_helper.to_array(x)
    if isinstance(x, (np.ndarray, np.generic)):
        return np.asarray(x)
    return x


def stage_ort(model, inputs, expected, rtol, atol):
    return _ort_run(model.SerializeToString(), _feeds(model, inputs))


def _import(model):
    import graphopt
    from graphopt.errors import GraphoptError

    try:
        return graphopt.import_onnx(model)
    except GraphoptError as e:
        raise Unsupported(str(e)) from None


def stage_O0(model, inputs, expected, rtol, atol):
    import graphopt

    g = _import(model)
    graphopt.verify(g)
    return _run_anywhere(graphopt.export_onnx(g), _feeds(model, inputs))


def stage_O1(model, inputs, expected, rtol, atol):
    import graphopt

    g = _import(model)
    run_passes = _run_passes()
    if run_passes is None:
        raise Unsupported("the pass pipeline is not available in this build")
    g = run_passes(g, "O1", verify_each=True)
    return _run_anywhere(graphopt.export_onnx(g), _feeds(model, inputs))


def stage_tvm(model, inputs, expected, rtol, atol):
    g = _import(model)
    try:
        from graphopt.api import optimize
    except ImportError:
        raise Unsupported("the TVM lowering is not available in this build") from None
    from graphopt.errors import GraphoptError

    try:
        compiled = optimize(model, target="cpu")
    except GraphoptError as e:
        raise Unsupported(str(e)) from None
    del g
    out = compiled(*[_feed(x) for x in inputs])
    return out if isinstance(out, (list, tuple)) else [out]


def _run_passes():
    try:
        from graphopt.pipeline import run_passes  # type: ignore[attr-defined]
    except ImportError:
        return None
    return run_passes


STAGES: dict[str, Callable] = {"ort": stage_ort, "O0": stage_O0, "O1": stage_O1, "tvm": stage_tvm}


def run_stage(stage: str, model, inputs, expected, rtol: float, atol: float) -> tuple[str, str]:
    """(status, detail) of one case at one stage; lets non-clean exceptions through
    (the worker reports those as crashes)."""
    try:
        actual = STAGES[stage](model, inputs, expected, rtol, atol)
    except Unsupported as e:
        return UNSUPPORTED, str(e)
    bad = compare(expected, actual, rtol, atol)
    return (MISMATCH, bad) if bad else (PASS, "")
