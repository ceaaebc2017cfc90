"""If and Loop lowered to Relax control flow (codegen/lower/control.py), against the
oracle. Each model is small and compiled once; every case runs it on several inputs so
that both branches, zero trips and early exits are all taken."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from codegen_testutil import check_against_oracle, compile_graph

F, I64, B = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL
N = helper.make_node
V = helper.make_tensor_value_info


def _import(nodes, inputs, outputs, inits=()):
    from graphopt.frontend.onnx_import import import_onnx

    g = helper.make_graph(nodes, "ctl", inputs, outputs, list(inits))
    return import_onnx(helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)], ir_version=10))


def _check_each(graph, feeds: list[dict]):
    model = compile_graph(graph)  # checks the lowering is well-formed first
    for f in feeds:
        check_against_oracle(graph, f, model=model)
    return model


def _lowered_text(graph) -> str:
    from codegen_testutil import lower_prepared

    return str(lower_prepared(graph).mod)


# --------------------------------------------------------------------------- If
def _if_graph(big_const: bool = False):
    """y, z = If(sum(x) > 0) then (x * w, -x) else (x - 1, |x|), w read from the enclosing
    graph. With ``big_const`` y is x @ W with a 4x20 W inside the then-branch (large enough
    to become a parameter that main passes down) or five copies of x side by side."""
    w = numpy_helper.from_array(np.linspace(-1, 1, 4).astype(np.float32), "w")
    one = numpy_helper.from_array(np.array(1.0, np.float32), "one")
    if big_const:
        big = numpy_helper.from_array(np.linspace(-2, 2, 80).astype(np.float32).reshape(4, 20), "big")
        then_g = helper.make_graph([N("MatMul", ["x", "big"], ["t0"]), N("Neg", ["x"], ["t1"])], "then", [],
                                   [V("t0", F, [3, 20]), V("t1", F, [3, 4])], [big])
        else_g = helper.make_graph([N("Concat", ["x"] * 5, ["e0"], axis=1), N("Abs", ["x"], ["e1"])], "else", [],
                                   [V("e0", F, [3, 20]), V("e1", F, [3, 4])])
        y_shape = [3, 20]
    else:
        then_g = helper.make_graph([N("Mul", ["x", "w"], ["t0"]), N("Neg", ["x"], ["t1"])], "then", [],
                                   [V("t0", F, [3, 4]), V("t1", F, [3, 4])])
        else_g = helper.make_graph([N("Sub", ["x", "one"], ["e0"]), N("Abs", ["x"], ["e1"])], "else", [],
                                   [V("e0", F, [3, 4]), V("e1", F, [3, 4])], [one])
        y_shape = [3, 4]
    nodes = [N("ReduceSum", ["x"], ["s"], keepdims=0), N("Greater", ["s", "zero"], ["c"]),
             N("If", ["c"], ["y", "z"], then_branch=then_g, else_branch=else_g)]
    inits = [numpy_helper.from_array(np.array(0.0, np.float32), "zero"), w]
    return _import(nodes, [V("x", F, [3, 4])], [V("y", F, y_shape), V("z", F, [3, 4])], inits)


@pytest.mark.parametrize("big_const", [False, True], ids=["captured", "branch-parameter"])
def test_if_takes_each_branch(big_const):
    from codegen_testutil import lower_prepared

    g = _if_graph(big_const)
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    _check_each(g, [{"x": np.abs(x)}, {"x": -np.abs(x)}])
    lowered = lower_prepared(g)
    assert "if " in str(lowered.mod)
    # W becomes main's one parameter (packed for the dense kernel: its padding follows the
    # host's vector width, so only W's values are checked, not the packed size).
    assert len(lowered.params) == (1 if big_const else 0)
    if big_const:
        big = np.linspace(-2, 2, 80).astype(np.float32)
        assert lowered.params[0].size >= big.size and np.isin(big, np.asarray(lowered.params[0])).all()


def test_if_branches_of_different_shapes():
    """then gives x (2x3), else gives x concatenated with itself (4x3): the result's shape
    is only known at run time."""
    then_g = helper.make_graph([N("Identity", ["x"], ["t"])], "then", [], [V("t", F, ["rows", 3])])
    else_g = helper.make_graph([N("Concat", ["x", "x"], ["e"], axis=0)], "else", [], [V("e", F, ["rows2", 3])])
    g = _import([N("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g), N("Relu", ["y"], ["r"])],
                [V("c", B, [1]), V("x", F, [2, 3])], [V("r", F, ["rows3", 3])])
    x = np.random.default_rng(1).standard_normal((2, 3)).astype(np.float32)
    model = _check_each(g, [{"c": np.array([True]), "x": x}, {"c": np.array([False]), "x": x}])
    assert model.run(c=np.array([False]), x=x)[0].shape == (4, 3)


def test_nested_if():
    inner_then = helper.make_graph([N("Add", ["x", "x"], ["it"])], "ithen", [], [V("it", F, [2])])
    inner_else = helper.make_graph([N("Mul", ["x", "x"], ["ie"])], "ielse", [], [V("ie", F, [2])])
    outer_then = helper.make_graph([N("If", ["c2"], ["ot"], then_branch=inner_then, else_branch=inner_else)],
                                   "othen", [], [V("ot", F, [2])])
    outer_else = helper.make_graph([N("Neg", ["x"], ["oe"])], "oelse", [], [V("oe", F, [2])])
    g = _import([N("If", ["c1"], ["y"], then_branch=outer_then, else_branch=outer_else)],
                [V("c1", B, []), V("c2", B, []), V("x", F, [2])], [V("y", F, [2])])
    x = np.array([1.5, -2.0], np.float32)
    _check_each(g, [{"c1": np.array(a), "c2": np.array(b), "x": x} for a in (True, False) for b in (True, False)])


# --------------------------------------------------------------------------- Loop
def _loop_graph(with_trips=True, with_cond=True, scan=True):
    """Loop: carried acc (vector of 3) += x * (i+1); stops after M trips or once
    sum(acc) > limit; scans acc each trip."""
    body_nodes = [N("Cast", ["i"], ["fi"], to=F), N("Add", ["fi", "one"], ["fi1"]),
                  N("Mul", ["x", "fi1"], ["step"]), N("Add", ["acc_in", "step"], ["acc_out"]),
                  N("ReduceSum", ["acc_out"], ["tot"], keepdims=0), N("Less", ["tot", "limit"], ["cond_out"])]
    outs = [V("cond_out", B, []), V("acc_out", F, [3])]
    if scan:
        body_nodes.append(N("Identity", ["acc_out"], ["acc_scan"]))
        outs.append(V("acc_scan", F, [3]))
    body = helper.make_graph(body_nodes, "body", [V("i", I64, []), V("cond_in", B, []), V("acc_in", F, [3])], outs,
                             [numpy_helper.from_array(np.array(1.0, np.float32), "one")])
    loop_ins = ["M" if with_trips else "", "c0" if with_cond else "", "acc0"]
    graph_outs = [V("acc_final", F, [3])] + ([V("scanned", F, ["trips", 3])] if scan else [])
    ins = [V("x", F, [3]), V("limit", F, [])]
    if with_trips:
        ins.append(V("M", I64, []))
    if with_cond:
        ins.append(V("c0", B, []))
    return _import([N("Loop", loop_ins, [o.name for o in graph_outs], body=body)], ins, graph_outs,
                   [numpy_helper.from_array(np.zeros(3, np.float32), "acc0")])


def _loop_feeds(with_trips=True, with_cond=True):
    x = np.array([0.5, 1.0, -0.25], np.float32)
    feeds = []
    for trips, limit, c0 in [(4, 100.0, True), (0, 100.0, True), (6, 3.0, True), (3, 100.0, False)]:
        f = {"x": x, "limit": np.array(limit, np.float32)}
        if with_trips:
            f["M"] = np.array(trips, np.int64)
        elif limit > 10:  # a while loop needs a condition that ends it
            f["limit"] = np.array(20.0, np.float32)
        if with_cond:
            f["c0"] = np.array(c0)
        feeds.append(f)
    return feeds


@pytest.mark.parametrize("with_trips,with_cond", [(True, True), (False, True), (True, False)],
                         ids=["trips-and-cond", "while", "for"])
def test_loop_matches_oracle(with_trips, with_cond):
    g = _loop_graph(with_trips, with_cond)
    _check_each(g, _loop_feeds(with_trips, with_cond))


def test_loop_zero_trips_gives_empty_scan():
    g = _loop_graph()
    model = compile_graph(g)
    out = model.run(x=np.ones(3, np.float32), limit=np.array(1e9, np.float32), M=np.array(0, np.int64),
                    c0=np.array(True))
    np.testing.assert_array_equal(out[0], np.zeros(3, np.float32))
    assert out[1].shape == (0, 3)


def test_loop_with_runtime_slice_and_symbolic_batch():
    """onnx's test_loop11 shape: each trip slices x[i:i+1] (starts computed at run time);
    x's length is symbolic, compiled once, run at two lengths."""
    body = helper.make_graph(
        [N("Unsqueeze", ["i", "ax"], ["b"]), N("Add", ["b", "one"], ["e"]),
         N("Slice", ["x", "b", "e"], ["sl"]), N("Add", ["y_in", "sl"], ["y_out"]), N("Identity", ["cond_in"], ["cond_out"])],
        "body", [V("i", I64, []), V("cond_in", B, []), V("y_in", F, [1])],
        [V("cond_out", B, []), V("y_out", F, [1]), V("sl", F, [1])],
        [numpy_helper.from_array(np.array([0], np.int64), "ax"), numpy_helper.from_array(np.array([1], np.int64), "one")])
    g = _import([N("Shape", ["x"], ["sh"]), N("Squeeze", ["sh"], ["M"]),
                 N("Loop", ["M", "", "y0"], ["y", "slices"], body=body)],
                [V("x", F, ["n"])], [V("y", F, [1]), V("slices", F, ["trips", 1])],
                [numpy_helper.from_array(np.zeros(1, np.float32), "y0")])
    rng = np.random.default_rng(2)
    _check_each(g, [{"x": rng.standard_normal(5).astype(np.float32)}, {"x": rng.standard_normal(2).astype(np.float32)}])


def test_loop_inside_if_and_if_inside_loop():
    """A Loop whose body holds an If (odd trips add, even trips subtract), inside an If."""
    odd_then = helper.make_graph([N("Add", ["v_in", "x"], ["o"])], "add", [], [V("o", F, [2])])
    odd_else = helper.make_graph([N("Sub", ["v_in", "x"], ["o2"])], "sub", [], [V("o2", F, [2])])
    body = helper.make_graph(
        [N("Mod", ["i", "two"], ["r"]), N("Equal", ["r", "one"], ["odd"]),
         N("If", ["odd"], ["v_out"], then_branch=odd_then, else_branch=odd_else), N("Identity", ["cond_in"], ["cond_out"])],
        "body", [V("i", I64, []), V("cond_in", B, []), V("v_in", F, [2])], [V("cond_out", B, []), V("v_out", F, [2])],
        [numpy_helper.from_array(np.array(2, np.int64), "two"), numpy_helper.from_array(np.array(1, np.int64), "one")])
    then_g = helper.make_graph([N("Loop", ["M", "", "x"], ["lv"], body=body)], "then", [], [V("lv", F, [2])])
    else_g = helper.make_graph([N("Neg", ["x"], ["nx"])], "else", [], [V("nx", F, [2])])
    g = _import([N("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g)],
                [V("c", B, []), V("M", I64, []), V("x", F, [2])], [V("y", F, [2])])
    x = np.array([1.0, -3.0], np.float32)
    _check_each(g, [{"c": np.array(True), "M": np.array(5, np.int64), "x": x},
                    {"c": np.array(True), "M": np.array(2, np.int64), "x": x},
                    {"c": np.array(False), "M": np.array(5, np.int64), "x": x}])


def test_main_keeps_dataflow_blocks_around_control_flow():
    """Ops before and after an If still sit in dataflow blocks (where TVM fuses them)."""
    text = _lowered_text(_if_graph())
    assert text.count("R.dataflow()") >= 2, text


def test_branch_returning_an_enclosing_value_two_levels_down():
    """The inner else-branch has no nodes: its output is r, computed in main's dataflow
    block two scopes up, which must leave that block to reach the functions. (ONNX cannot
    say it, a graph output must be a node's; graphopt's IR can: the Identity is dropped
    after import, and the oracle runs the graph as imported.)"""
    from graphopt.testing import assert_close, run_reference

    def build():
        inner_then = helper.make_graph([N("Neg", ["x"], ["it"])], "ithen", [], [V("it", F, [2])])
        inner_else = helper.make_graph([N("Identity", ["r"], ["ie"])], "ielse", [], [V("ie", F, [2])])
        outer_then = helper.make_graph([N("If", ["c2"], ["ot"], then_branch=inner_then, else_branch=inner_else)],
                                       "othen", [], [V("ot", F, [2])])
        outer_else = helper.make_graph([N("Abs", ["x"], ["oe"])], "oelse", [], [V("oe", F, [2])])
        return _import([N("Relu", ["x"], ["r"]), N("If", ["c1"], ["y"], then_branch=outer_then, else_branch=outer_else)],
                       [V("c1", B, []), V("c2", B, []), V("x", F, [2])], [V("y", F, [2])])

    reference, g = build(), build()
    inner = g.nodes[-1].attrs["then_branch"].value.nodes[0].attrs["else_branch"].value
    ident = inner.nodes[0]
    inner.set_output(0, inner.lookup("r"))
    inner.erase_node(ident)
    assert not inner.nodes and inner.outputs[0].producer is g.nodes[0]
    from tvm import relax

    from codegen_testutil import lower_prepared

    relax.analysis.well_formed(lower_prepared(g).mod)  # raises unless r leaves main's dataflow block
    model = compile_graph(g)
    x = np.array([1.5, -2.0], np.float32)
    for a in (True, False):
        for b in (True, False):
            feed = {"c1": np.array(a), "c2": np.array(b), "x": x}
            assert_close(run_reference(reference, feed), model.run(**feed), ["y"])
