"""specialize-shapes: binding symbolic dims (and input shapes) to sizes, then -O1 folding
what that made constant; the contradictions it refuses, each naming the input and dim."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graphopt.errors import ShapeBindingError
from graphopt.ir import DType, Graph, TensorData, TensorType
from graphopt.ir.binding import resolve_binding
from graphopt.ir.clone import clone_graph
from graphopt.ir.parser import parse_ir
from graphopt.ir.verifier import verify
from graphopt.ops import build
from graphopt.pipeline import PassFailedError, run_pipeline
from graphopt.testing import assert_close, random_inputs, run_reference
from graphopt.testing import strategies as gst
from graphopt.testing.settings import examples

from passes_testutil import run_checked

F32, I64 = DType.FLOAT32, DType.INT64
SHAPE_OPS = {"Shape", "Size", "Gather", "Concat", "Range", "ConstantOfShape"}


def _const(g: Graph, hint: str, a) -> object:
    return g.add_constant(g.fresh_name(hint), TensorData.from_numpy(np.asarray(a)))


def shape_chains() -> Graph:
    """x: [batch, seq, 4] and m: [seq]; outputs computed from Shape(x) the way exported
    transformers do: a Reshape target, positions from Range, a length mask, an Expand, a
    Slice to a computed end, a Tile by computed repeats, ConstantOfShape and Size."""
    g = Graph("main", {"": 21})
    x = g.add_input("x", TensorType(F32, ("batch", "seq", 4)))
    m = g.add_input("m", TensorType(F32, ("seq",)))
    s = build(g, "Shape", [x]).output
    batch = build(g, "Gather", [s, _const(g, "i0", np.array([0], np.int64))], {"axis": 0}).output
    seq = build(g, "Gather", [s, _const(g, "i1", np.int64(1))], {"axis": 0}).output
    target = build(g, "Concat", [batch, _const(g, "m1", np.array([-1], np.int64))], {"axis": 0}).output
    flat = build(g, "Reshape", [x, target]).output
    pos = build(g, "Range", [_const(g, "zero", np.int64(0)), seq, _const(g, "one", np.int64(1))]).output
    posf = build(g, "Cast", [pos], {"to": F32.onnx}).output
    shifted = build(g, "Add", [m, posf]).output
    half = build(g, "Div", [seq, _const(g, "two", np.int64(2))]).output
    mask = build(g, "Less", [pos, half]).output
    masked = build(g, "Where", [mask, m, _const(g, "zf", np.float32(0))]).output
    ones = build(g, "Expand", [_const(g, "onef", np.array([1.0], np.float32)), s]).output
    plus = build(g, "Add", [x, ones]).output
    end = build(g, "Sub", [build(g, "Unsqueeze", [seq, _const(g, "ax0", np.array([0], np.int64))]).output,
                           _const(g, "one1", np.array([1], np.int64))]).output
    sl = build(g, "Slice", [x, _const(g, "st", np.array([0], np.int64)), end, _const(g, "ax1", np.array([1], np.int64))]).output
    reps = build(g, "Concat", [_const(g, "r1", np.array([1], np.int64)), batch], {"axis": 0}).output
    tiled = build(g, "Tile", [build(g, "Unsqueeze", [m, _const(g, "ax", np.array([0], np.int64))]).output, reps]).output
    zeros = build(g, "ConstantOfShape", [s]).output
    size = build(g, "Cast", [build(g, "Size", [x]).output], {"to": F32.onnx}).output
    total = build(g, "Add", [zeros, size]).output
    g.set_outputs([flat, shifted, masked, plus, sl, tiled, total])
    verify(g)
    return g


def _symbolic_values(g: Graph) -> list[str]:
    out = [f"%{v.name}: {v.type}" for v in g.inputs if not v.type.is_static]
    for n in g.walk():
        out += [f"%{o.name}: {o.type}" for o in n.outputs if o is not None and not o.type.is_static]
    return out


def _specialized_then_o1(g: Graph, spec: str, inputs: dict) -> None:
    original = clone_graph(g)
    run = run_checked(g, spec, inputs)
    assert [r.changed for r in run.records] == [True]
    run_checked(g, "O1", inputs)
    assert _symbolic_values(g) == []
    left = sorted({n.op_type for n in g.walk()} & SHAPE_OPS)
    assert left == [], f"shape computations left after O1: {left}"
    # Against the symbolic graph as it was, fed inputs of the bound shapes.
    assert_close(run_reference(original, inputs), run_reference(g, inputs))


def test_dims_bind_every_type_and_o1_folds_the_shape_chains():
    g = shape_chains()
    _specialized_then_o1(g, "specialize-shapes{dims=batch:2;seq:5}", random_inputs(g, dims={"batch": 2, "seq": 5}))
    assert [str(v.type) for v in g.inputs] == ["f32[2, 5, 4]", "f32[5]"]


def test_shapes_option_binds_the_symbols_of_an_input():
    g = shape_chains()
    _specialized_then_o1(g, "specialize-shapes{shapes=x:3x2x4}", random_inputs(g, dims={"batch": 3, "seq": 2}))


def test_partial_binding_leaves_the_other_dim_symbolic():
    g = shape_chains()
    inputs = random_inputs(g, dims={"batch": 2, "seq": 3})
    run_checked(g, "specialize-shapes{dims=seq:3}", inputs)
    assert [str(v.type) for v in g.inputs] == ["f32[batch, 3, 4]", "f32[3]"]
    # The Range over seq folds; what depends on batch stays computed.
    run_checked(g, "O1", inputs)
    ops = {n.op_type for n in g.walk()}
    assert "Range" not in ops and "Shape" in ops


def test_subgraphs_are_bound_too():
    g = parse_ir('''graph main(%cond: bool[], %x: f32[n, 3]) opset("": 21) {
  %out: f32[n, 3] = If(%cond) {else_branch=graph else_g() {
    %neg: f32[n, 3] = Neg(%x) @neg
    return %neg
  }, then_branch=graph then_g() {
    %s: i64[2] = Shape(%x) @shape
    %e: f32[n, 3] = Expand(%x, %s) @expand
    return %e
  }} @if
  return %out
}''')
    inputs = random_inputs(g, dims={"n": 4})
    run_checked(g, "specialize-shapes{dims=n:4}", inputs)
    assert _symbolic_values(g) == []
    run_checked(g, "O1", inputs)
    assert not any(n.op_type == "Shape" for n in g.walk())


@pytest.mark.parametrize("spec", ["specialize-shapes", "specialize-shapes{dims=,shapes=}"])
def test_no_binding_changes_nothing(spec):
    g = shape_chains()
    run = run_pipeline(g, spec, verify_each=True)
    assert not run.records[0].changed and _symbolic_values(g)


@pytest.mark.parametrize("spec", ["specialize-shapes{dims=n:2}", "specialize-shapes{shapes=x:2x3}"])
def test_an_already_static_graph_is_unchanged(spec):
    g = parse_ir('''graph main(%x: f32[2, 3]) opset("": 21) {
  %y: f32[2, 3] = Relu(%x) @relu
  return %y
}''')
    out = io.StringIO()
    run = run_pipeline(g, spec, verify_each=True, explain=out)
    assert not run.records[0].changed
    if "dims" in spec:
        assert "dim n" in out.getvalue()  # skipped, and said so under --explain


def test_bisect_limit_stops_the_binding():
    g = shape_chains()
    run = run_pipeline(g, "specialize-shapes{dims=seq:3}", bisect_limit=0)
    assert not run.records[0].changed and run.ctx.refused == 1
    assert [str(v.type) for v in g.inputs] == ["f32[batch, seq, 4]", "f32[seq]"]


# ---------------------------------------------------------------------------- errors
@pytest.mark.parametrize("shapes,dims,words", [
    ({"y": (2, 3, 4)}, None, ["'y'", "no such input", "inputs: x, m"]),
    ({"x": (2, 3)}, None, ["'x'", "rank 2", "f32[batch, seq, 4]"]),
    ({"x": (2, 3, 5)}, None, ["'x'", "dim 2", "is 4 in the model", "gives 5"]),
    ({"x": (0, 3, 4)}, None, ["'x'", "dim 0", "size 0 is not positive"]),
    (None, {"seq": -1}, ["'seq'", "not positive"]),
    (None, {"sequence": 8}, ["'sequence'", "dims: batch, seq"]),
    ({"x": (2, 3, 4)}, {"seq": 4}, ["'seq'", "gives 4", "input 'x' dim 1 gives 3"]),
    ({"x": (2, 3, 4), "m": (5,)}, None, ["'seq'", "input 'x' dim 1 gives 3", "input 'm' dim 0 gives 5"]),
])
def test_contradicting_bindings_name_the_input_and_dim(shapes, dims, words):
    g = shape_chains()
    with pytest.raises(ShapeBindingError) as e:
        resolve_binding(g, shapes, dims)
    assert all(w in str(e.value) for w in words), str(e.value)


def test_a_dim_the_graph_fixes_downstream_names_the_node():
    g = parse_ir('''graph main(%x: f32[b, 4], %y: f32[2, 4]) opset("": 21) {
  %z: f32[2, 4] = Add(%x, %y) @add
  return %z
}''')
    with pytest.raises(PassFailedError) as e:
        run_pipeline(g, "specialize-shapes{dims=b:3}")
    assert isinstance(e.value.__cause__, ShapeBindingError)
    msg = str(e.value)
    assert "b=3" in msg and "'add'" in msg and "specialize-shapes" in msg, msg


def test_bad_option_text_is_an_error():
    g = shape_chains()
    for spec, words in [("specialize-shapes{dims=seq}", "NAME:VALUE"), ("specialize-shapes{dims=seq:x}", "'seq'"),
                        ("specialize-shapes{shapes=x:2xax4}", "bad shape")]:
        with pytest.raises(PassFailedError, match=words):
            run_pipeline(g, spec)


# ---------------------------------------------------------------------------- properties
def _with_shape_chain(g: Graph) -> Graph:
    """A Reshape of the first input to [dim 0, -1] through Shape/Gather/Concat, as an
    extra output: something the binding must make foldable."""
    x = g.inputs[0]
    if x.type.rank is None or x.type.rank < 1:
        return g
    s = build(g, "Shape", [x]).output
    d0 = build(g, "Gather", [s, _const(g, "i0", np.array([0], np.int64))], {"axis": 0}).output
    t = build(g, "Concat", [d0, _const(g, "m1", np.array([-1], np.int64))], {"axis": 0}).output
    g.set_outputs(list(g.outputs) + [build(g, "Reshape", [x, t]).output])
    return g


_SIZES = st.integers(1, 4)


@settings(max_examples=examples(25), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(gst.graphs(max_nodes=8, symbolic=True), _SIZES, _SIZES, st.integers(0, 2 ** 16))
def test_specialized_graphs_keep_the_oracles_numbers(g, n, s, seed):
    g = _with_shape_chain(g)
    dims = {k: v for k, v in {"N": n, "S": s}.items() if k in gst.symbols_of(g)}
    inputs = random_inputs(g, seed=seed, dims={"N": n, "S": s})
    original = clone_graph(g)
    spec = "specialize-shapes{dims=" + ";".join(f"{k}:{v}" for k, v in dims.items()) + "}"
    run_checked(g, spec, inputs)
    run_checked(g, "O1", inputs)
    assert _symbolic_values(g) == []
    assert not any(n.op_type == "Shape" for n in g.walk())
    assert_close(run_reference(original, inputs), run_reference(g, inputs))


@settings(max_examples=examples(3), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(gst.graphs(min_nodes=2, max_nodes=8, symbolic=True), _SIZES, _SIZES, st.integers(0, 2 ** 16))
def test_compiled_specialized_graphs_match_the_oracle(g, n, s, seed):
    """Through graphopt.optimize: the binding runs before -O1 and the result takes inputs of
    the bound shapes only; the oracle runs the symbolic graph on the same inputs."""
    import graphopt

    g = _with_shape_chain(g)
    dims = {k: v for k, v in {"N": n, "S": s}.items() if k in gst.symbols_of(g)}
    inputs = random_inputs(g, seed=seed, dims={"N": n, "S": s})
    expected = run_reference(g, inputs)
    compiled = graphopt.optimize(g, dims=dims, opt_level="O1")
    assert all(all(isinstance(d, int) for d in i["shape"]) for i in compiled.manifest["inputs"])
    assert_close(expected, compiled.run(**inputs), [o.name for o in g.outputs])
