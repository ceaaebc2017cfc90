"""Fused groups: outline a convex node set into one graphopt.FusedGroup, inline it back;
the verifier, the text form, ONNX export as a local function (onnx.checker, onnxruntime)
and import back, and the oracle's numbers across all of them."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graphopt
from graphopt.ir import OutlineError, inline, is_fused_group, outline, why_not_outline
from graphopt.ir.parser import parse_ir
from graphopt.ir.printer import print_ir
from graphopt.ir.verifier import verify
from graphopt.testing import assert_close, run_reference
from graphopt.testing import strategies as gst
from graphopt.testing.settings import examples

DIAMOND = '''graph g(%x: f32[2, 3]) opset("": 21) {
  const %one: f32[] = dense<[1.0]>
  %a: f32[2, 3] = Add(%x, %one) @add
  %b: f32[2, 3] = Relu(%a) @relu
  %c: f32[2, 3] = Mul(%b, %a) @mul
  %d: f32[2, 3] = Neg(%b) @neg
  return %c, %d
}'''


def _node(g, name):
    return next(n for n in g.nodes if n.name == name)


def test_outline_makes_one_group_with_the_escaping_values_as_outputs():
    g = parse_ir(DIAMOND)
    group = outline(g, [_node(g, "add"), _node(g, "relu")], "fused")
    verify(g)
    assert is_fused_group(group) and [n.name for n in g.nodes] == ["fused", "mul", "neg"]
    assert [o.name for o in group.outputs] == ["a", "b"]  # used outside: both escape, names kept
    assert [v.name for v in group.inputs] == ["x"]  # constants are copied in: kernels need them known
    body = group.attrs["body"].value
    assert [n.op_type for n in body.nodes] == ["Add", "Relu"]
    assert [c.name for c in body.constants] == ["fused/one"]
    assert g.opset_imports["graphopt"] == 1
    text = print_ir(g)
    assert print_ir(parse_ir(text)) == text


def test_a_non_convex_set_is_refused_with_the_reason_and_nothing_changes():
    g = parse_ir(DIAMOND)
    before = print_ir(g)
    with pytest.raises(OutlineError, match="not convex: node 'relu' \\(outside it\\) reads a value of node 'add' "
                                           "and feeds node 'mul'"):
        outline(g, [_node(g, "add"), _node(g, "mul")])
    assert print_ir(g) == before and len(g.journal) == 0
    assert why_not_outline(g, []) == "no nodes to outline"


def test_inline_restores_the_graph():
    g = parse_ir(DIAMOND)
    group = outline(g, [_node(g, "relu"), _node(g, "mul")])
    inline(g, group)
    verify(g)
    assert print_ir(g).replace(', "graphopt": 1', "") == print_ir(parse_ir(DIAMOND))


def test_a_group_passing_an_input_straight_out():
    g = parse_ir('''graph g(%x: f32[4]) opset("": 21) {
  %y: f32[4] = Identity(%x) @id
  return %y
}''')
    group = outline(g, [g.nodes[0]])
    verify(g)
    inline(g, group)
    verify(g)
    assert [o.name for o in g.outputs] == ["y"]


def _convex_subset(g, draw_index, size):
    """Grow a convex node set from a drawn start node, adding neighbours that keep it convex."""
    nodes = list(g.nodes)
    chosen = [nodes[draw_index % len(nodes)]]
    grew = True
    while grew and len(chosen) < size:
        grew = False
        for n in nodes:
            if len(chosen) >= size:
                break
            if n in chosen:
                continue
            touches = any(v is not None and v.producer in chosen for v in n.inputs) or any(
                o is not None and any(u.node in chosen for u in o.uses()) for o in n.outputs)
            if touches and why_not_outline(g, chosen + [n]) is None:
                chosen.append(n)
                grew = True
    return chosen


@settings(max_examples=examples(100), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(gst.graph_and_inputs(min_nodes=3, max_nodes=12), st.integers(0, 1000), st.integers(2, 8))
def test_outlining_random_convex_sets_keeps_numbers_and_round_trips(case, start, size):
    g, feeds = case
    if not g.nodes or any(n.subgraphs() for n in g.nodes):
        return
    expected = run_reference(g, feeds)
    chosen = _convex_subset(g, start, size)
    if why_not_outline(g, chosen):  # a dead node drawn first: nothing to group
        return
    group = outline(g, chosen)
    verify(g)
    text = print_ir(g, full_constants=True)
    assert print_ir(parse_ir(text), full_constants=True) == text
    # ONNX: a model-local function that passes onnx.checker (export checks), that
    # onnxruntime runs with the same numbers, and that imports back as the same group.
    model = graphopt.export_onnx(g)
    assert [f.domain for f in model.functions] == ["graphopt"]
    assert_close(expected, run_reference(g, feeds))
    back = graphopt.import_onnx(model)
    if all(id(o) not in {id(v) for v in group.attrs["body"].value.inputs} for o in group.attrs["body"].value.outputs):
        assert print_ir(back, full_constants=True) == text  # (a passed-through input comes back via an Identity)
    inline(g, group)
    verify(g)
    assert_close(expected, run_reference(g, feeds))
    assert not any(is_fused_group(n) for n in g.nodes)


def test_export_writes_a_local_function_that_onnxruntime_runs_and_import_reads_back():
    g = parse_ir(DIAMOND)
    feeds = {"x": np.linspace(-2, 2, 6, dtype=np.float32).reshape(2, 3)}
    expected = run_reference(g, feeds)
    outline(g, [_node(g, "add"), _node(g, "relu")], "fused")
    model = graphopt.export_onnx(g)
    assert [(f.domain, f.name) for f in model.functions] == [("graphopt", "FusedGroup_fused")]
    assert [n.op_type for n in model.graph.node] == ["FusedGroup_fused", "Mul", "Neg"]
    assert_close(expected, run_reference(g, feeds))
    assert print_ir(graphopt.import_onnx(model)) == print_ir(g)


def test_other_local_functions_are_still_inlined():
    from onnx import TensorProto, helper

    f = helper.make_function("mine", "Twice", ["a"], ["b"], [helper.make_node("Add", ["a", "a"], ["b"])],
                             [helper.make_opsetid("", 21)])
    m = helper.make_model(helper.make_graph(
        [helper.make_node("Twice", ["x"], ["y"], domain="mine")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])]),
        opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("mine", 1)], functions=[f])
    g = graphopt.import_onnx(m)
    assert [n.op_type for n in g.nodes] == ["Add"]


def test_graphopt_exposes_outline():
    assert graphopt.ir.outline is outline and graphopt.ir.inline is inline
