"""Integer Div (truncates toward zero), integer Pow (through double, as onnxruntime does)
and Hardmax (first maximum wins), against the oracle."""

import numpy as np

from graphopt.compiler import compile_model
from graphopt.ir import DType, Graph, TensorData, TensorType
from graphopt.ops import build
from graphopt.testing import run_reference


def test_int_div_pow_and_hardmax():
    g = Graph("g", {"": 21})
    a = g.add_input("a", TensorType(DType.INT32, (2, 4)))
    b = g.add_input("b", TensorType(DType.INT32, (2, 4)))
    e = g.add_constant("e", TensorData.from_numpy(np.array([0, 1, 2, 3], np.int64)))
    x = g.add_input("x", TensorType(DType.FLOAT32, ("N", 5)))
    u = g.add_input("u", TensorType(DType.UINT8, (4,)))
    v = g.add_constant("v", TensorData.from_numpy(np.array([3, 4, 5, 7], np.uint8)))
    q = build(g, "Div", [a, b], name="div")
    p = build(g, "Pow", [build(g, "Cast", [a], {"to": 7}).output, e], name="pow")
    h = build(g, "Hardmax", [x], {"axis": 1}, name="hardmax")
    uq = build(g, "Div", [u, v], name="udiv")
    g.outputs = [q.output, p.output, h.output, uq.output]
    feeds = {
        "a": np.array([[7, -7, 7, -7], [0, -1, 5, -9]], np.int32),
        "b": np.array([[2, 2, -2, -2], [3, 2, -5, 4]], np.int32),
        "x": np.array([[1, 3, 3, 0, 2], [5, 5, 5, 5, 5], [-1, -2, -3, -1, 0]], np.float32),  # ties: first wins
        "u": np.array([250, 3, 9, 100], np.uint8),
    }
    expected = run_reference(g, feeds)
    got = compile_model(g).run(**feeds)
    for w, o in zip(expected, got):
        assert w.dtype == o.dtype
        np.testing.assert_array_equal(o, w)
