"""fuse-conv-bn: BatchNormalization and per-channel Mul/Add folded into the conv."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graphopt
from graphopt.ir import DType, Graph, TensorData, TensorType
from graphopt.ops import build
from graphopt.testing import strategies as gst

from passes_testutil import N_EXAMPLES, run_checked

RNG = np.random.default_rng(0)


def const(g: Graph, name: str, a) -> object:
    return g.add_constant(g.fresh_name(name), TensorData.from_numpy(np.asarray(a, np.float32)))


def conv_graph(users: int = 1):
    g = Graph("g", {"": 21})
    x = g.add_input("x", TensorType(DType.FLOAT32, ("N", 3, 8, 8)))
    w = const(g, "w", RNG.standard_normal((4, 3, 3, 3)))
    b = const(g, "b", RNG.standard_normal(4))
    conv = build(g, "Conv", [x, w, b], {"pads": [1, 1, 1, 1]}, name="conv")
    outs = []
    bn = build(g, "BatchNormalization", [conv.output, const(g, "s", RNG.uniform(0.5, 2, 4)),
                                          const(g, "t", RNG.standard_normal(4)), const(g, "m", RNG.standard_normal(4)),
                                          const(g, "v", RNG.uniform(0.5, 2, 4))], name="bn")
    outs.append(bn.output)
    if users > 1:
        outs.append(build(g, "Relu", [conv.output], name="other_user").output)
    g.outputs = outs
    return g


def inputs():
    return {"x": RNG.uniform(-1, 1, (2, 3, 8, 8)).astype(np.float32)}


def test_batchnorm_mul_add_chain_folds_into_one_conv():
    g = conv_graph()
    mul = build(g, "Mul", [g.outputs[0], const(g, "c", RNG.uniform(0.5, 2, (4, 1, 1)))], name="mul")
    add = build(g, "Add", [mul.output, const(g, "d", RNG.standard_normal((1, 4, 1, 1)))], name="add")
    g.outputs = [add.output]
    # Each fold produces a new Conv that the next rule matches: BN, then Mul, then Add.
    run = run_checked(g, ["fuse-conv-bn", "dce"], inputs())
    assert [n.op_type for n in g.nodes] == ["Conv"]
    conv = g.nodes[0]
    assert conv.provenance.rule.startswith("fuse-conv-bn.")
    assert g.outputs[0].name == "add"  # the graph output keeps its name
    assert any(r.changed for r in run.records)


@pytest.mark.parametrize("case", ["two-users", "not-per-channel", "weights-not-constant"])
def test_unchanged(case):
    if case == "two-users":
        g = conv_graph(users=2)
    else:
        g = Graph("g", {"": 21})
        x = g.add_input("x", TensorType(DType.FLOAT32, (1, 3, 8, 8)))
        if case == "weights-not-constant":
            w = g.add_input("w", TensorType(DType.FLOAT32, (4, 3, 3, 3)))
            feeds = {"w": RNG.standard_normal((4, 3, 3, 3)).astype(np.float32)}
        else:
            w = const(g, "w", RNG.standard_normal((4, 3, 3, 3)))
            feeds = {}
        conv = build(g, "Conv", [x, w], name="conv")
        c = const(g, "c", RNG.uniform(0.5, 2, (1, 1, 6, 6)))  # varies over space, not channels
        g.outputs = [build(g, "Mul", [conv.output, c], name="mul").output]
    before = graphopt.print_ir(g)
    feeds = {**inputs(), **(feeds if case != "two-users" else {})}
    if case != "two-users":
        feeds["x"] = feeds["x"][:1]
    run = run_checked(g, ["fuse-conv-bn"], feeds)
    assert not any(r.changed for r in run.records)
    assert graphopt.print_ir(g) == before


@pytest.mark.parametrize("op", ["Mul", "Add"])
def test_constant_first_folds_too(op):
    # Mul and Add are commutative: the matcher tries both operand orders, so c * conv folds
    # like conv * c without a mirrored rule.
    g = Graph("g", {"": 21})
    x = g.add_input("x", TensorType(DType.FLOAT32, (1, 3, 8, 8)))
    conv = build(g, "Conv", [x, const(g, "w", RNG.standard_normal((4, 3, 3, 3)))], name="conv")
    c = const(g, "c", RNG.uniform(0.5, 2, (4, 1, 1)))
    g.outputs = [build(g, op, [c, conv.output], name="affine").output]
    run_checked(g, ["fuse-conv-bn", "dce"], {"x": inputs()["x"][:1]})
    assert [n.op_type for n in g.nodes] == ["Conv"]


def test_a_conv_with_another_user_says_which():
    import io

    out = io.StringIO()
    graphopt.run_passes(conv_graph(users=2), ["fuse-conv-bn"], explain=out)
    assert "bn (BatchNormalization): %conv is also used by node 'other_user'" in out.getvalue()


def plant_affine(graph: Graph, choose) -> None:
    """After some Conv nodes with constant weights, insert a BatchNormalization or a
    per-channel Mul/Add with random constants, for the pass to fold."""
    for node in list(graph.nodes):
        if node.op_type != "Conv" or not node.inputs[1].is_constant or choose(3) == 0:
            continue
        o = node.output
        uses = o.uses()
        was_output = o.is_graph_output()
        c = o.type.shape[1]
        dt = o.type.dtype.numpy
        rng = np.random.default_rng(choose(1000))

        def k(shape, lo=-1.0, hi=1.0):
            return graph.add_constant(graph.fresh_name("p"), TensorData.from_numpy(rng.uniform(lo, hi, shape).astype(dt)))

        kind = choose(3)
        if kind == 0:
            new = build(graph, "BatchNormalization", [o, k(c, 0.5, 2), k(c), k(c), k(c, 0.5, 2)], after=node)
        elif kind == 1:
            operands = [o, k((c, 1, 1) if len(o.type.shape) == 4 else (c, 1), 0.5, 2)]
            new = build(graph, "Mul", operands[::-1] if choose(2) else operands, after=node)
        else:
            operands = [o, k((1, c) + (1,) * (len(o.type.shape) - 2))]
            new = build(graph, "Add", operands[::-1] if choose(2) else operands, after=node)
        for u in uses:
            graph.set_input(u.node, u.index, new.output)
        if was_output:
            graph.set_outputs([new.output if v is o else v for v in graph.outputs])


@settings(max_examples=N_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(gst.graph_and_inputs(ops=["Conv", "Relu", "Add", "MaxPool"], max_nodes=8), st.randoms(use_true_random=False))
def test_fuse_conv_bn_keeps_numbers(case, rnd):
    g, feeds = case
    plant_affine(g, rnd.randrange)
    run_checked(g, ["fuse-conv-bn"], feeds)


def test_resnet50_with_random_weights_at_O2():
    from graphopt.testing import MODEL_TOLERANCE, run_reference
    from graphopt.testing.models import light_model_inputs, randomized_light_model

    model = randomized_light_model("resnet50")
    feeds = light_model_inputs(model)
    g = graphopt.import_onnx(model)
    expected = run_reference(g, feeds)
    g = graphopt.run_passes(g, "O2", verify_each=True)
    assert sum(n.op_type == "BatchNormalization" for n in g.nodes) == 0
    np.testing.assert_allclose(run_reference(g, feeds)[0], expected[0], rtol=MODEL_TOLERANCE.rtol,
                               atol=MODEL_TOLERANCE.atol)
