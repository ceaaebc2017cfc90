"""A compiled model's outputs belong to the caller: a later call never writes into an array
returned earlier, and no output shares memory with an input, a parameter, a constant or
another output, whichever way the VM produced it (fresh buffers are handed over without a
copy; the rest are copied). Numbers are checked against onnxruntime."""

from __future__ import annotations

import threading

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphopt


def _model(nodes, outputs, inits=(), shape=(4, 4)):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))
    outs = [helper.make_tensor_value_info(o, TensorProto.FLOAT, s) for o, s in outputs]
    g = helper.make_graph(nodes, "outs", [x], outs, initializer=list(inits))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)])


_C = numpy_helper.from_array(np.arange(16, dtype=np.float32).reshape(4, 4), "c")
_W = numpy_helper.from_array(np.linspace(-1, 1, 16, dtype=np.float32).reshape(4, 4), "w")
_SHP = numpy_helper.from_array(np.array([16], np.int64), "shp")

MODELS = {
    "relu": _model([helper.make_node("Relu", ["x"], ["y"])], [("y", [4, 4])]),
    # an output that is a constant: the VM returns the same tensor every call
    "constant": _model([helper.make_node("Identity", ["c"], ["k"]), helper.make_node("Relu", ["x"], ["y"])],
                       [("k", [4, 4]), ("y", [4, 4])], [_C]),
    # one value output twice
    "twice": _model([helper.make_node("Relu", ["x"], ["y"]), helper.make_node("Identity", ["y"], ["z"])],
                    [("y", [4, 4]), ("z", [4, 4])]),
    "identity": _model([helper.make_node("Identity", ["x"], ["y"])], [("y", [4, 4])]),
    "reshape": _model([helper.make_node("Reshape", ["x", "shp"], ["y"])], [("y", [16])], [_SHP]),
    # a parameter (big enough not to be folded into the executable) beside a computed output
    "weight": _model([helper.make_node("Identity", ["w"], ["k"]), helper.make_node("MatMul", ["x", "w"], ["y"])],
                     [("k", [4, 4]), ("y", [4, 4])], [_W]),
}


def _oracle(model, x):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})


@pytest.fixture(scope="module", params=sorted(MODELS))
def case(request):
    return request.param, MODELS[request.param], graphopt.optimize(MODELS[request.param], opt_level=None)


def _x(seed):
    return np.random.default_rng(seed).standard_normal((4, 4)).astype(np.float32)


def test_outputs_are_fresh_arrays_per_call(case):
    name, model, m = case
    x1, x2 = _x(1), _x(2)
    first = m.run(x1)
    kept = [a.copy() for a in first]
    second = m.run(x2)
    for a, k in zip(first, kept):  # the second call wrote nothing into the first's results
        np.testing.assert_array_equal(a, k)
    for a in first:  # mutating a result changes nothing the model keeps
        a[...] = -7.0
    for got, want in zip(m.run(x2), _oracle(model, x2)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    for got, want in zip(second, _oracle(model, x2)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_outputs_share_no_memory(case):
    name, model, m = case
    x = _x(3)
    outs = m.run(x)
    for i, a in enumerate(outs):
        assert a.flags.writeable and a.flags.c_contiguous
        assert not np.shares_memory(a, x), f"{name}: output {i} shares the input's memory"
        for b in outs[i + 1:]:
            assert not np.shares_memory(a, b), f"{name}: two outputs share memory"


def test_a_fresh_output_is_handed_over_without_a_copy():
    # The other side of the check above: a freshly computed output is the VM's own buffer,
    # viewed (a copy would leave the array owning its data, with no base).
    m = graphopt.optimize(MODELS["relu"], opt_level=None)
    a = m(_x(4))
    assert a.base is not None
    b = m(_x(5))
    assert not np.shares_memory(a, b)


def test_concurrent_calls_give_each_caller_its_numbers():
    model = MODELS["weight"]
    m = graphopt.optimize(model, opt_level=None)
    xs = [_x(10 + i) for i in range(4)]
    want = [_oracle(model, x) for x in xs]
    errors = []

    def worker(i):
        x = np.repeat(xs[i], 2, axis=1)[:, ::2]  # strided: goes through the staging copy
        for _ in range(200):
            got = m.run(x)
            if not all(np.allclose(g, w, rtol=1e-5, atol=1e-6) for g, w in zip(got, want[i])):
                errors.append(i)
                return

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
