"""Nodes built with the same op get distinct fresh symbols (they stand for different sizes)."""

from graphopt.ir import DType, Graph, TensorType
from graphopt.ops import build


def test_fresh_symbols_differ_between_nodes_of_one_op():
    g = Graph("main", {"": 21})
    x = g.add_input("x", TensorType(DType.FLOAT32, ("N", 3)))
    a = build(g, "Concat", [x, x], {"axis": 0})
    b = build(g, "Concat", [x, x, x], {"axis": 0})
    assert a.name != b.name
    assert a.output.type.shape[0] != b.output.type.shape[0]
    assert a.output.type.shape[0].startswith(a.name) and b.output.type.shape[0].startswith(b.name)
