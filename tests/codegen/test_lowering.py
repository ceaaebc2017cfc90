"""Each op's lowering against the oracle on hypothesis graphs; coverage of the registry."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from graphopt.testing import strategies as gst
from graphopt.testing.settings import examples

from codegen_testutil import check_against_oracle

SETTINGS = dict(deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))


def test_strategy_ops_are_lowered():
    from graphopt.codegen.lower import lowered_ops

    missing = set(gst.ALL_OPS) - lowered_ops()
    assert not missing, f"ops the strategies generate but codegen cannot lower: {sorted(missing)}"


def test_lowered_ops_cover_light_models():
    from graphopt.codegen.lower import lowered_ops

    needed = {"Conv", "BatchNormalization", "Relu", "MaxPool", "AveragePool", "GlobalAveragePool", "Concat",
              "Reshape", "Gemm", "Softmax", "Dropout", "LRN", "Sum", "Add", "Mul", "Unsqueeze", "Transpose",
              "ConstantOfShape"}
    assert needed <= lowered_ops()


def test_every_registered_op_lowers():
    """The README's op table reads lowered_ops(); a new registry op needs a lowering."""
    from graphopt.codegen.lower import lowered_ops
    from graphopt.ops import supported_ops

    registered = {s.qualified for s in supported_ops()}
    assert registered, "the op registry is empty"
    assert not registered - lowered_ops(), sorted(registered - lowered_ops())


@pytest.mark.parametrize("family", sorted(gst.FAMILIES))
def test_family_matches_oracle(family):
    @settings(max_examples=examples(2), **SETTINGS)
    @given(gst.graph_and_inputs(max_nodes=5, ops=[family, "Relu", "Add"] + (["Abs"] if family == "unary" else [])))
    def run(case):
        graph, inputs = case
        check_against_oracle(graph, inputs)

    run()


def test_mixed_graphs_match_oracle():
    @settings(max_examples=examples(3), **SETTINGS)
    @given(gst.graph_and_inputs(min_nodes=4, max_nodes=12))
    def run(case):
        graph, inputs = case
        check_against_oracle(graph, inputs)

    run()


@pytest.mark.slow
def test_mixed_graphs_match_oracle_many():
    @settings(max_examples=examples(40), **SETTINGS)
    @given(gst.graph_and_inputs(min_nodes=2, max_nodes=20))
    def run(case):
        graph, inputs = case
        check_against_oracle(graph, inputs)

    run()


@pytest.mark.slow
def test_symbolic_graphs_match_oracle_many():
    @settings(max_examples=examples(20), **SETTINGS)
    @given(gst.graph_and_inputs(min_nodes=2, max_nodes=12, symbolic=True))
    def run(case):
        graph, inputs = case
        check_against_oracle(graph, inputs)

    run()


def test_symbolic_graph_matches_oracle():
    @settings(max_examples=examples(2), **SETTINGS)
    @given(gst.graph_and_inputs(min_nodes=2, max_nodes=6, symbolic=True, ops=["unary", "binary", "matmul", "softmax"]))
    def run(case):
        graph, inputs = case
        check_against_oracle(graph, inputs)

    run()


def test_unsupported_ops_listed_at_once():
    from graphopt.codegen.lower import lower
    from graphopt.errors import UnsupportedOpError
    from graphopt.ir import DType, Graph, TensorType

    g = Graph("g")
    t = TensorType(DType.FLOAT32, (2, 3))
    x = g.add_input("x", t)
    a = g.add_node("FancyOp", [x], [t], name="first_fancy")
    b = g.add_node("OtherOp", [a.output], [t], name="the_other")
    c = g.add_node("FancyOp", [b.output], [t], name="second_fancy")
    g.set_outputs([c.output])
    with pytest.raises(UnsupportedOpError) as ei:
        lower(g)
    msg = str(ei.value)
    for part in ("FancyOp", "OtherOp", "first_fancy", "second_fancy", "the_other"):
        assert part in msg


def test_fused_group_becomes_one_kernel():
    import numpy as np

    from graphopt.codegen.build import prepare
    from graphopt.codegen.lower import lower
    from graphopt.codegen.target import Target
    from graphopt.ir import DType, Graph, TensorType
    from codegen_testutil import compile_graph

    g = Graph("g")
    t = TensorType(DType.FLOAT32, (2, 3))
    x, y = g.add_input("x", t), g.add_input("y", t)
    body = Graph("body", scope=g)
    a, b = body.add_input("a", t), body.add_input("b", t)
    s = body.add_node("Add", [a, b], [t], name="add")
    r = body.add_node("Relu", [s.output], [t], name="relu")
    body.set_outputs([r.output])
    n = g.add_node("FusedGroup", [x, y], [t], {"body": body}, domain="graphopt", name="grp")
    m = g.add_node("Mul", [n.output, x], [t], name="mul")
    g.set_outputs([m.output])
    lowered = lower(g)
    assert lowered.mod["fused_grp"].attrs["Primitive"] == 1
    mod = prepare(lowered.mod, Target.parse("cpu").tvm)
    from tvm import tirx

    prims = [gv.name_hint for gv, f in mod.functions.items() if isinstance(f, tirx.PrimFunc)]
    assert any("grp" in p for p in prims), prims
    cm = compile_graph(g)
    xv = np.random.default_rng(0).uniform(-1, 1, (2, 3)).astype(np.float32)
    yv = np.random.default_rng(1).uniform(-1, 1, (2, 3)).astype(np.float32)
    np.testing.assert_allclose(cm(xv, yv), np.maximum(xv + yv, 0) * xv, rtol=1e-6)


def test_fused_group_with_its_own_kernels_and_a_large_constant():
    """The group's body pads differently from main (both TE kernels, which a separate
    builder named alike) and holds an 80-element constant (a parameter passed down)."""
    import numpy as np

    from graphopt.ir import DType, Graph, TensorData, TensorType
    from codegen_testutil import compile_graph

    g = Graph("g")
    t, tp = TensorType(DType.FLOAT32, (4, 20)), TensorType(DType.FLOAT32, (4, 22))
    x = g.add_input("x", t)
    pads_main = g.add_constant("pads_main", TensorData.from_numpy(np.array([0, 2, 0, 0], np.int64)))
    pm = g.add_node("Pad", [x, pads_main], [tp], name="pad_main")
    body = Graph("body", scope=g)
    a = body.add_input("a", t)
    w_np = np.linspace(-1, 1, 80).astype(np.float32).reshape(4, 20)
    w = body.add_constant("w", TensorData.from_numpy(w_np))
    pads_in = body.add_constant("pads_in", TensorData.from_numpy(np.array([0, 0, 0, 2], np.int64)))
    mul = body.add_node("Mul", [a, w], [t], name="mul_w")
    pad = body.add_node("Pad", [mul.output, pads_in], [tp], name="pad_in")
    body.set_outputs([pad.output])
    grp = g.add_node("FusedGroup", [x], [tp], {"body": body}, domain="graphopt", name="grp")
    out = g.add_node("Add", [pm.output, grp.output], [tp], name="add")
    g.set_outputs([out.output])
    xv = np.random.default_rng(0).uniform(-1, 1, (4, 20)).astype(np.float32)
    want = np.pad(xv, [(0, 0), (2, 0)]) + np.pad(xv * w_np, [(0, 0), (0, 2)])
    np.testing.assert_allclose(compile_graph(g)(xv), want, rtol=1e-6)


def _relu_chain():
    from graphopt.ir import DType, Graph, TensorType

    g = Graph("g")
    t = TensorType(DType.FLOAT32, (2, 3))
    x = g.add_input("x", t)
    a = g.add_node("Relu", [x], [t], name="the_relu")
    b = g.add_node("Neg", [a.output], [t], name="the_neg")
    g.set_outputs([b.output])
    return g


def test_a_bug_in_a_lowering_is_an_internal_error(monkeypatch):
    """An unexpected exception inside a lowering is a bug: an InternalError naming the node
    and op (never a refusal, which --fallback ort would paper over)."""
    from graphopt.codegen.lower import lower, registry
    from graphopt.errors import GraphoptError, InternalError

    def broken(ctx, n):
        return {}["no such key"]

    monkeypatch.setitem(registry.TABLE, "Relu", broken)
    with pytest.raises(InternalError) as ei:
        lower(_relu_chain())
    assert not isinstance(ei.value, GraphoptError)
    assert "'the_relu' (Relu)" in str(ei.value) and "KeyError" in str(ei.value)


def test_a_bug_in_a_fused_groups_lowering_names_the_inner_node(monkeypatch):
    from graphopt.codegen.lower import lower, registry
    from graphopt.errors import InternalError
    from graphopt.ir import DType, Graph, TensorType

    g = Graph("g")
    t = TensorType(DType.FLOAT32, (2, 3))
    x = g.add_input("x", t)
    body = Graph("body", scope=g)
    a = body.add_input("a", t)
    r = body.add_node("Relu", [a], [t], name="inner_relu")
    body.set_outputs([r.output])
    n = g.add_node("FusedGroup", [x], [t], {"body": body}, domain="graphopt", name="grp")
    g.set_outputs([n.output])
    monkeypatch.setitem(registry.TABLE, "Relu", lambda ctx, n: 1 / 0)
    with pytest.raises(InternalError, match="'inner_relu' \\(Relu\\).*ZeroDivisionError"):
        lower(g)


def test_a_deliberate_refusal_stays_a_refusal(monkeypatch):
    from graphopt.codegen.lower import LoweringRefusedError, lower, registry

    def refuses(ctx, n):
        raise ctx.fail("this case is not handled")

    monkeypatch.setitem(registry.TABLE, "Relu", refuses)
    monkeypatch.setitem(registry.TABLE, "Neg", refuses)
    with pytest.raises(LoweringRefusedError) as ei:
        lower(_relu_chain())
    assert sorted(nm for _, nm in ei.value.ops) == ["the_neg", "the_relu"]
    assert "this case is not handled" in str(ei.value)
