"""Constant folding specifics: size limits, exact integer arithmetic, no divide by zero,
nondeterministic ops, names of folded constants, graph outputs."""

from __future__ import annotations

import numpy as np

from graphopt.ir.parser import parse_ir
from graphopt.pipeline import run_pipeline
from graphopt.testing import run_reference

from passes_testutil import run_checked


def test_size_limit_keeps_big_constants_unfolded():
    g = parse_ir('''graph main(%x: f32[1, 4, 8, 8]) opset("": 21) {
  const %wshape: i64[4] = dense<[4, 4, 3, 3]>
  %w: f32[4, 4, 3, 3] = ConstantOfShape(%wshape) {value=tensor<f32[1]: dense<[0.5]>>} @make_w
  %y: f32[1, 4, 6, 6] = Conv(%x, %w) @conv
  return %y
}''')
    run = run_checked(g, ["fold-constants{max-elements=100}"], {"x": np.ones([1, 4, 8, 8], np.float32)})
    assert not run.records[0].changed
    assert [n.op_type for n in g.nodes] == ["ConstantOfShape", "Conv"]
    run = run_checked(g, ["fold-constants"], {"x": np.ones([1, 4, 8, 8], np.float32)})
    assert [n.op_type for n in g.nodes] == ["Conv"]
    assert g.lookup("w").is_constant  # the folded constant keeps the value's name


def test_big_intermediate_is_fine_when_consumers_shrink_it():
    g = parse_ir('''graph main(%x: f32[1]) opset("": 21) {
  const %shape: i64[2] = dense<[100, 100]>
  %big: f32[100, 100] = ConstantOfShape(%shape) {value=tensor<f32[1]: dense<[0.25]>>} @big
  %s: f32[] = ReduceSum(%big) {keepdims=0} @sum
  %y: f32[1] = Add(%x, %s) @add
  return %y
}''')
    run_checked(g, ["fold-constants{max-elements=16}", "dce"], {"x": np.ones([1], np.float32)})
    assert [n.op_type for n in g.nodes] == ["Add"]
    assert g.lookup("s").const.numpy().tolist() == 2500.0


def test_int64_arithmetic_is_exact():
    big = 2 ** 53 + 1  # not representable in float64
    g = parse_ir(f'''graph main(%x: i64[1]) opset("": 21) {{
  const %a: i64[1] = dense<[{big}]>
  const %b: i64[1] = dense<[2]>
  %m: i64[1] = Mul(%a, %b) @mul
  %d: i64[1] = Div(%m, %b) @div
  %y: i64[1] = Add(%x, %d) @add
  return %y
}}''')
    run_checked(g, ["fold-constants", "dce"], {"x": np.zeros([1], np.int64)})
    assert g.lookup("d").const.numpy().tolist() == [big]


def test_no_integer_division_by_zero():
    g = parse_ir('''graph main(%x: i64[2]) opset("": 21) {
  const %a: i64[2] = dense<[7, 8]>
  const %z: i64[2] = dense<[1, 0]>
  %d: i64[2] = Div(%a, %z) @div
  %m: i64[2] = Mod(%a, %z) @mod
  %y: i64[2] = Add(%x, %d) @add
  return %y, %m
}''')
    run = run_pipeline(g, ["fold-constants"], verify_each=True, explain=False)
    assert not run.records[0].changed
    assert [n.op_type for n in g.nodes] == ["Div", "Mod", "Add"]


def test_graph_output_keeps_its_name_and_shape_chain_folds():
    g = parse_ir('''graph main(%x: f32[2, 3, 4]) opset("": 21) {
  const %zero: i64[] = dense<[0]>
  const %axes: i64[1] = dense<[0]>
  const %rest: i64[1] = dense<[-1]>
  %s: i64[3] = Shape(%x) @shape
  %n: i64[] = Gather(%s, %zero) {axis=0} @gather
  %n1: i64[1] = Unsqueeze(%n, %axes) @unsqueeze
  %t: i64[2] = Concat(%n1, %rest) {axis=0} @concat
  %r: f32[2, 12] = Reshape(%x, %t) @reshape
  return %r, %s
}''')
    run_checked(g, ["fold-constants", "dce"], {"x": np.ones([2, 3, 4], np.float32)})
    assert [n.op_type for n in g.nodes] == ["Reshape"]
    assert [o.name for o in g.outputs] == ["r", "s"]
    assert g.outputs[1].is_constant and g.outputs[1].const.numpy().tolist() == [2, 3, 4]


def test_nondeterministic_ops_are_refused():
    from graphopt.ir import Node
    from graphopt.passes.fold_constants import FoldConstants

    for op in ("RandomUniform", "RandomNormalLike", "Bernoulli", "Multinomial", "Dropout"):
        assert FoldConstants()._refuse(Node(op)) is not None


def test_explain_says_why():
    import io

    g = parse_ir('''graph main(%x: f32[1, 4, 8, 8]) opset("": 21) {
  const %wshape: i64[4] = dense<[4, 4, 3, 3]>
  %w: f32[4, 4, 3, 3] = ConstantOfShape(%wshape) {value=tensor<f32[1]: dense<[0.5]>>} @make_w
  %y: f32[1, 4, 6, 6] = Conv(%x, %w) @conv
  return %y
}''')
    out = io.StringIO()
    run_pipeline(g, ["fold-constants{max-elements=100}"], explain=out)
    text = out.getvalue()
    assert "make_w (ConstantOfShape): %w would have 144 elements, over the limit 100" in text
    assert "conv (Conv): input 0 %x is not constant" in text


def test_integer_matmul_folds_to_the_exact_int32_result():
    # 255*127 + 255*127 overflows int16: onnxruntime's u8 x s8 kernel saturates there on
    # AVX2 CPUs without VNNI; folding evaluates through the oracle's exact reference.
    g = parse_ir('''graph g(%x: i32[1, 2]) opset("": 21) {
  const %a: u8[1, 2] = dense<[255, 255]>
  const %b: i8[2, 1] = dense<[127, 127]>
  %m: i32[1, 1] = MatMulInteger(%a, %b) @mm
  %y: i32[1, 2] = Add(%x, %m) @add
  return %y
}''')
    run_checked(g, ["fold-constants"], {"x": np.zeros((1, 2), np.int32)})
    folded = next(v for v in g.constants if v.producer is None and v.type.shape == (1, 1))
    assert int(folded.const.numpy()[0, 0]) == 2 * 255 * 127


def test_gather_of_the_static_dims_of_a_partly_symbolic_shape_folds():
    # x's batch is symbolic, its sequence length known: the dims picked from Shape(x) that
    # are static fold, the symbolic one stays computed.
    g = parse_ir('''graph main(%x: f32[b, 3, 4]) opset("": 21) {
  const %one: i64[] = dense<[1]>
  const %zero: i64[1] = dense<[0]>
  const %last: i64[2] = dense<[-1, 1]>
  %s: i64[3] = Shape(%x) @shape
  %seq: i64[] = Gather(%s, %one) {axis=0} @gather_seq
  %two: i64[2] = Gather(%s, %last) {axis=0} @gather_two
  %batch: i64[1] = Gather(%s, %zero) {axis=0} @gather_batch
  %seqf: f32[] = Cast(%seq) {to=1} @cast
  %y: f32[b, 3, 4] = Mul(%x, %seqf) @mul
  return %y, %two, %batch
}''')
    run_checked(g, ["fold-constants", "dce"], {"x": np.ones([2, 3, 4], np.float32)})
    assert sorted(n.name for n in g.nodes) == ["gather_batch", "mul", "shape"]
    assert g.outputs[1].is_constant


def test_a_folded_reshape_target_makes_the_reshaped_type_static():
    # The Reshape's target is computed: the registry had to make up its output dims. Once
    # the target folds, the re-inferred sizes replace them, and so do the Relu's after it.
    g = parse_ir('''graph main(%x: f32[2, 3, 4]) opset("": 21) {
  const %rest: i64[1] = dense<[-1]>
  %s: i64[3] = Shape(%x) @shape
  %t: i64[4] = Concat(%s, %rest) {axis=0} @concat
  %r: f32[reshape_d0, reshape_d1, reshape_d2, reshape_d3] = Reshape(%x, %t) @reshape
  %y: f32[reshape_d0, reshape_d1, reshape_d2, reshape_d3] = Relu(%r) @relu
  return %y
}''')
    run_checked(g, ["fold-constants"], {"x": np.ones([2, 3, 4], np.float32)})
    assert g.outputs[0].type.is_static and all(o.type.is_static for n in g.nodes for o in n.outputs)


def test_shape_with_a_start_past_the_symbolic_dims_folds():
    g = parse_ir('''graph main(%x: f32[b, 3, 4]) opset("": 21) {
  %tail: i64[2] = Shape(%x) {start=1} @tail
  %all: i64[3] = Shape(%x) @all
  return %tail, %all
}''')
    run_checked(g, ["fold-constants", "dce"], {"x": np.ones([2, 3, 4], np.float32)})
    assert [n.name for n in g.nodes] == ["all"] and g.outputs[0].is_constant
