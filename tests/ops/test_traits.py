"""Op traits in the registry: every op has a pattern kind, and the traits say what the ops
do (checked against onnxruntime, not against the table itself)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from graphopt.ir import DType, Graph, TensorType
from graphopt.ops import PatternKind, get_schema, infer_types, supported_ops
from graphopt.testing.oracle import oracle_session


def test_every_op_has_a_pattern_kind():
    missing = [s.qualified for s in supported_ops() if s.traits.kind is None]
    assert not missing, f"ops without a PatternKind (set it next to their registration): {missing}"


COMMUTATIVE = sorted(s.op_type for s in supported_ops() if s.traits.commutative)


def _binary_model(op: str, dtype: int):
    x = helper.make_tensor_value_info("a", dtype, [3, 4])
    y = helper.make_tensor_value_info("b", dtype, [3, 4])
    out_dtype = TensorProto.BOOL if op in ("Equal", "Less", "And", "Or", "Xor") else dtype
    z = helper.make_tensor_value_info("z", out_dtype, [3, 4])
    g = helper.make_graph([helper.make_node(op, ["a", "b"], ["z"])], "g", [x, y], [z])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)]).SerializeToString()


def test_the_commutative_set():
    assert COMMUTATIVE == ["Add", "And", "BitwiseAnd", "BitwiseOr", "BitwiseXor", "Equal", "Max", "Mean", "Min", "Mul",
                           "Or", "Sum", "Xor"]


@pytest.mark.parametrize("op", COMMUTATIVE + ["Sub", "Div", "Pow", "Less"])
def test_commutative_means_the_operands_swap(op):
    rng = np.random.default_rng(0)
    if op in ("And", "Or", "Xor"):
        dt, a, b = TensorProto.BOOL, rng.integers(0, 2, (3, 4)).astype(bool), rng.integers(0, 2, (3, 4)).astype(bool)
    elif op.startswith("Bitwise"):
        dt, a, b = TensorProto.INT32, rng.integers(-50, 50, (3, 4), np.int32), rng.integers(-50, 50, (3, 4), np.int32)
    else:
        dt, a, b = TensorProto.FLOAT, rng.uniform(0.5, 2, (3, 4)).astype(np.float32), rng.uniform(0.5, 2, (3, 4)).astype(np.float32)
        b[0, 0] = a[0, 0]  # Equal must see a true element
    sess = oracle_session(_binary_model(op, dt))
    ab = sess.run(None, {"a": a, "b": b})[0]
    ba = sess.run(None, {"a": b, "b": a})[0]
    assert np.array_equal(ab, ba) == get_schema(op).traits.commutative, op


@pytest.mark.parametrize("op,domain", sorted((s.op_type, s.domain) for s in supported_ops()
                                             if s.traits.kind is PatternKind.ELEMENTWISE and s.op_type != "Dropout"))
def test_elementwise_ops_keep_the_shape(op, domain):
    g = Graph("g", {"": 21})
    dt = DType.BOOL if op == "Not" else DType.INT32 if op == "BitwiseNot" else DType.FLOAT32
    x = g.add_input("x", TensorType(dt, (2, 3, 5)))
    attrs = {}
    if op in ("Cast",):
        from graphopt.ir import Attr, AttrKind

        attrs = {"to": Attr(AttrKind.INT, TensorProto.FLOAT)}
    inputs = [x, x] if op == "CastLike" else [x]
    out = infer_types(op, inputs, attrs, domain=domain)
    assert out[0].shape == (2, 3, 5)


def test_other_traits():
    assert not get_schema("Dropout").traits.deterministic
    assert all(s.traits.deterministic for s in supported_ops() if s.op_type != "Dropout")
    assert sorted(s.op_type for s in supported_ops() if s.traits.control_flow) == ["If", "Loop"]
    assert onnx.defs.has("If")  # the control-flow names are onnx's own


def test_flops_rules_live_with_the_ops():
    from graphopt.bench.flops import count_flops
    from graphopt.ir.parser import parse_ir

    g = parse_ir('''graph g(%a: f32[2, 3], %b: f32[3, 4]) opset("": 21) {
  const %s: i64[1] = dense<[8]>
  %m: f32[2, 4] = MatMul(%a, %b) @mm
  %r: f32[2, 4] = Relu(%m) @relu
  %t: f32[2, 4] = Tanh(%r) @tanh
  %f: f32[8] = Reshape(%t, %s) @flat
  %y: f32[] = ReduceSum(%f) {keepdims=0} @sum
  return %y
}''')
    fc = count_flops(g)
    assert fc.by_op == {"MatMul": 2 * 2 * 4 * 3, "Relu": 8, "Tanh": 4 * 8, "ReduceSum": 8}
    assert get_schema("Reshape").traits.flops(None) == 0
