"""The verifier catches each kind of broken graph and names the node."""

import numpy as np
import pytest

import graphopt
from graphopt.ir import DType, Graph, TensorData, TensorType, Use
from graphopt.ir.verifier import VerificationError, verify
from graphopt.ops import build

F = lambda *s: TensorType(DType.FLOAT32, s)  # noqa: E731


def good():
    g = Graph("g", {"": 21})
    x = g.add_input("x", F(2, 3))
    a = build(g, "Relu", [x], name="a")
    b = build(g, "Neg", [a.output], name="b")
    c = build(g, "Add", [a.output, b.output], name="c")
    g.outputs = [c.output]
    return g, x, a, b, c


def problems(g):
    with pytest.raises(VerificationError) as e:
        verify(g)
    return str(e.value)


def test_a_good_graph_verifies():
    g, *_ = good()
    verify(g)


def test_out_of_order_use():
    g, x, a, b, c = good()
    g.move_before(c, a)
    msg = problems(g)
    assert "node 'c' (Add)" in msg and "read before node 'a' defines it" in msg


def test_cycle():
    g, x, a, b, c = good()
    g.set_input(a, 0, c.output)
    assert "node 'a' (Relu)" in problems(g)


def test_wrong_declared_type():
    g, x, a, b, c = good()
    g.set_output_type(b.output, F(2, 4))
    msg = problems(g)
    assert "node 'b' (Neg)" in msg and "f32[2, 4]" in msg and "registry infers f32[2, 3]" in msg


def test_wrong_dtype():
    g, x, a, b, c = good()
    g.set_output_type(a.output, TensorType(DType.INT64, (2, 3)))
    assert "dtype i64, but the registry infers f32" in problems(g)


def test_invalid_op_use():
    g, x, a, b, c = good()
    g.set_inputs(c, [a.output])  # Add with one input
    assert "node 'c' (Add)" in problems(g)


def test_unknown_op():
    g, x, a, b, c = good()
    n = g.add_node("Frobnicate", [x], [F(2, 3)], name="frob")
    g.outputs = [c.output, n.output]
    assert "node 'frob' (Frobnicate): op is not in the registry" in problems(g)


def test_output_not_defined():
    g, x, a, b, c = good()
    other = Graph("other")
    stray = other.add_input("stray", F(1))
    g.outputs = [c.output, stray]
    assert "output 1 %stray is not defined" in problems(g)


def test_no_outputs():
    g, x, a, b, c = good()
    g.outputs = []
    assert "has no outputs" in problems(g)


def test_use_list_out_of_sync():
    g, x, a, b, c = good()
    a.output._uses.remove(Use(b, 0))  # corrupt it behind the API's back
    assert "missing from that value's use list" in problems(g)
    g2, x, a, b, c = good()
    a.output._uses.append(Use(c, 1))
    assert "stale use by node 'c'" in problems(g2)


def test_constant_type_disagrees_with_data():
    g, x, a, b, c = good()
    w = g.add_constant("w", TensorData.from_numpy(np.zeros((2, 3), np.float32)))
    w.type = F(3, 2)
    assert "constant %w: declared f32[3, 2]" in problems(g)


def test_duplicate_definition_in_subgraph_scope():
    g, x, a, b, c = good()
    sub = Graph("body", scope=g)
    y = sub.add_node("Relu", [x], [F(2, 3)], name="inner")
    sub.outputs = [y.output]
    cond = g.add_input("cond", TensorType(DType.BOOL, ()))
    els = Graph("else", scope=g)
    z = els.add_node("Neg", [x], [F(2, 3)], name="inner2")
    els.outputs = [z.output]
    n = g.add_node("If", [cond], [F(2, 3)], {"then_branch": sub, "else_branch": els}, name="if")
    g.outputs = [n.output]
    verify(g)
    sub._values["x"] = y.output  # shadow an outer name behind the API's back
    y.output._name = "x"
    assert "value %x is defined more than once" in problems(g)


def test_every_problem_is_listed():
    g, x, a, b, c = good()
    g.set_output_type(a.output, F(9, 9))
    g.set_output_type(b.output, F(8, 8))
    e = problems(g)
    assert "node 'a'" in e and "node 'b'" in e


def test_light_model_verifies():
    from graphopt.testing.models import randomized_light_model

    verify(graphopt.import_onnx(randomized_light_model("squeezenet")))
