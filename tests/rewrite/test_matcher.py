"""The DAG pattern matcher and the worklist driver: each capability with a changed case, an
unchanged case and its reason, and idempotence; numbers checked against the oracle."""

from __future__ import annotations

import numpy as np
import pytest

import graphopt
from graphopt.ir.parser import parse_ir
from graphopt.pipeline import PassContext
from graphopt.rewrite import Const, Maybe, Op, RuleSet, Var, apply_rules
from graphopt.testing import assert_close, random_inputs, run_reference


def _apply(text: str, rules, explain: bool = True):
    """Parse, apply ``rules`` (verifying and checking the oracle's numbers), then check that a
    second application changes nothing. Returns (graph, changed, explain log text)."""
    g = parse_ir(text)
    feeds = random_inputs(g, seed=1)
    expected = run_reference(g, feeds)
    ctx = PassContext(explain=explain)
    changed = apply_rules(g, ctx, rules)
    graphopt.verify(g)
    assert_close(expected, run_reference(g, feeds))
    again = PassContext()
    assert apply_rules(g, again, rules) is False and again.count == 0
    return g, changed, ctx.explain.format() if explain else ""


def _ops(g):
    return [n.op_type for n in g.nodes]


# --------------------------------------------------------------------------- a DAG: one value, several pattern nodes
square_plus = RuleSet("t")
# x * x + x = x * (x + 1): three uses of one value, matched as one
square_plus.add("square-plus", "x*x + x -> x*(x+1)", Op("Add", Op("Mul", Var("x"), Var("x")), Var("x")),
                lambda rw, m: rw.op("Mul", [m.x, rw.op("Add", [m.x, rw.const(np.ones((), np.float32))]).output]).output)

SQUARE = '''graph g(%x: f32[3], %y: f32[3]) opset("": 21) {
  %m: f32[3] = Mul(%x, %A) @mul
  %r: f32[3] = Add(%m, %B) @add
  return %r
}'''


def test_shared_input_matches_one_value():
    g, changed, _ = _apply(SQUARE.replace("%A", "%x").replace("%B", "%x"), square_plus.rules)
    assert changed and _ops(g) == ["Add", "Mul"]
    assert g.nodes[1].provenance.rule == "t.square-plus"


def test_shared_input_refuses_different_values():
    g, changed, log = _apply(SQUARE.replace("%A", "%y").replace("%B", "%x"), square_plus.rules)
    assert not changed and _ops(g) == ["Mul", "Add"]
    assert "x is bound to %x and to %y" in log


# --------------------------------------------------------------------------- commutativity from the op's traits
sub_zero = RuleSet("t")
sub_zero.add("sub-zero", "x - 0 -> x", Op("Sub", Var("x"), Const("c", lambda a: None if np.all(a == 0) else "not 0")),
             lambda rw, m: m.x)
mul_two = RuleSet("t")
mul_two.add("mul-two", "x * 2 -> x + x", Op("Mul", Var("x"), Const("c", lambda a: None if np.all(a == 2) else "not 2")),
            lambda rw, m: rw.op("Add", [m.x, m.x]).output)

BINARY = '''graph g(%x: f32[4]) opset("": 21) {
  const %k: f32[] = dense<[K]>
  %y: f32[4] = OP(ARGS) @node
  %z: f32[4] = Relu(%y) @relu
  return %z
}'''


@pytest.mark.parametrize("args", ["%x, %k", "%k, %x"])
def test_commutative_op_matches_both_orders(args):
    g, changed, _ = _apply(BINARY.replace("K", "2.0").replace("OP", "Mul").replace("ARGS", args), mul_two.rules)
    assert changed and _ops(g) == ["Add", "Relu"]


def test_non_commutative_op_keeps_its_order():
    text = BINARY.replace("K", "0.0").replace("OP", "Sub")
    g, changed, _ = _apply(text.replace("ARGS", "%x, %k"), sub_zero.rules)
    assert changed and _ops(g) == ["Relu"]
    g, changed, log = _apply(text.replace("ARGS", "%k, %x"), sub_zero.rules)  # 0 - x is not x
    assert not changed and "input 1 of Sub 'node' %x is not a constant" in log
    assert "operands swapped" not in log


def test_commutative_miss_gives_both_reasons():
    g, changed, log = _apply(BINARY.replace("K", "3.0").replace("OP", "Mul").replace("ARGS", "%x, %k"), mul_two.rules)
    assert not changed
    assert "input 1 of Mul 'node' %k: not 2 (with the operands swapped: input 0 of Mul 'node' %x is not a constant)" in log


# --------------------------------------------------------------------------- optional nodes
# Relu(x + b) or Relu(x) -> Max(x + b, 0) or Max(x, 0): the Add may be absent
relu_max = RuleSet("t")


@relu_max.rule("relu-max", "Relu(x [+ b]) -> Max(x [+ b], 0)",
               Op("Relu", Maybe(Op("Add", Var("x"), Const("b"), name="add"), through=0)))
def _relu_max(rw, m):
    v = m.x if m.get("add") is None else rw.op("Add", [m.x, m.b]).output
    return rw.op("Max", [v, rw.const(np.zeros((), np.float32))]).output


def test_optional_node_present_and_absent():
    present = '''graph g(%x: f32[4]) opset("": 21) {
  const %b: f32[4] = dense<[0.5, -0.5, 0.25, 0.0]>
  %s: f32[4] = Add(%x, %b) @add
  %r: f32[4] = Relu(%s) @relu
  return %r
}'''
    g, changed, _ = _apply(present, relu_max.rules)
    assert changed and _ops(g) == ["Add", "Max"] and g.nodes[0].provenance.rule == "t.relu-max"
    absent = '''graph g(%x: f32[4]) opset("": 21) {
  %r: f32[4] = Relu(%x) @relu
  return %r
}'''
    g, changed, _ = _apply(absent, relu_max.rules)
    assert changed and _ops(g) == ["Max"]


# --------------------------------------------------------------------------- containment, and rules that keep values
add_mul = RuleSet("t")
# (x * 2) + 1 -> x + x + 1 (the Mul must be used only here)
add_mul.add("fold", "x*2 + 1 -> (x+x) + 1", Op("Add", Op("Mul", Var("x"), Const("two"), name="mul"), Const("one")),
            lambda rw, m: rw.op("Add", [rw.op("Add", [m.x, m.x]).output, m.one]).output)
keep_mul = RuleSet("t")


@keep_mul.rule("fold-both", "x*2 + 1 -> (x+x) + 1, and x*2 -> x+x where it is used outside",
               Op("Add", Op("Mul", Var("x"), Const("two"), name="mul"), Const("one"), name="add"), keep=("mul",))
def _fold_both(rw, m):
    twice = rw.op("Add", [m.x, m.x]).output
    return {m.mul.output: twice, m.add.output: rw.op("Add", [twice, m.one]).output}


CHAIN = '''graph g(%x: f32[4]) opset("": 21) {
  const %two: f32[] = dense<[2.0]>
  const %one: f32[] = dense<[1.0]>
  %m: f32[4] = Mul(%x, %two) @mul
  %a: f32[4] = Add(%m, %one) @add
  %o: f32[4] = Relu(%m) @outside
  return %a, %o
}'''


def test_containment_refuses_and_names_the_outside_user():
    g, changed, log = _apply(CHAIN, add_mul.rules)
    assert not changed and "%m is also used by node 'outside'" in log
    inside = CHAIN.replace("  %o: f32[4] = Relu(%m) @outside\n", "").replace("return %a, %o", "return %a")
    g, changed, _ = _apply(inside, add_mul.rules)
    assert changed and "Mul" not in _ops(g)


def test_a_rule_may_replace_several_outputs_of_its_match():
    g, changed, _ = _apply(CHAIN, keep_mul.rules)
    assert changed and "Mul" not in _ops(g)
    relu = next(n for n in g.nodes if n.op_type == "Relu")
    assert relu.inputs[0].producer.op_type == "Add"  # the outside user now reads the replacement
    assert [o.name for o in g.outputs] == ["a", "o"]


# --------------------------------------------------------------------------- the worklist driver
def test_worklist_cascades_without_rescanning():
    neg = RuleSet("t")
    neg.add("neg-neg", "Neg(Neg(x)) -> x", Op("Neg", Op("Neg", Var("x"))), lambda rw, m: m.x, shared=True)
    rule = neg.rules[0]
    calls = []
    original = rule.match

    def counting(node):
        calls.append(node.name)
        return original(node)

    rule.match = counting
    body = "\n".join(f"  %r{i}: f32[4] = Relu(%{'x' if i == 0 else f'r{i - 1}'}) @relu{i}" for i in range(50))
    negs = "\n".join(f"  %n{i}: f32[4] = Neg(%{'r49' if i == 0 else f'n{i - 1}'}) @neg{i}" for i in range(8))
    text = f'graph g(%x: f32[4]) opset("": 21) {{\n{body}\n{negs}\n  return %n7\n}}'
    g, changed, _ = _apply(text, neg.rules, explain=False)
    assert changed and _ops(g).count("Neg") == 0
    # Each Neg is tried about once (the second, idempotence run finds none left); a driver
    # that rescanned the graph after every change would try the rule at every remaining Neg
    # after each of the four rewrites.
    assert len(calls) <= 2 * 8


# --------------------------------------------------------------------------- alternatives: one rule, several spellings
from graphopt.rewrite import OneOf  # noqa: E402

halves = RuleSet("t")
# -(x / 2) = -(x * 0.5) = x * -0.5: one algebra, its inner half written with Div or with Mul
halves.add("neg-half", "-(x/2) or -(x*0.5) -> x*(-0.5)",
           Op("Neg", OneOf(Op("Div", Var("x"), Const("c", lambda a: None if np.all(a == 2) else "not 2")),
                           Op("Mul", Var("x"), Const("h", lambda a: None if np.all(a == 0.5) else "not 0.5")))),
           lambda rw, m: rw.op("Mul", [m.x, rw.const(np.asarray(-0.5, np.float32))]).output)
ONE_OF = '''graph g(%x: f32[3]) opset("": 21) {
  const %c: f32[] = dense<[C]>
  %h: f32[3] = OP(%x, %c) @op
  %r: f32[3] = Neg(%h) @neg
  return %r
}'''


@pytest.mark.parametrize("op,c", [("Div", "2.0"), ("Mul", "0.5")])
def test_one_of_matches_each_spelling(op, c):
    g, changed, _ = _apply(ONE_OF.replace("OP", op).replace("C", c), halves.rules)
    assert changed and _ops(g) == ["Mul"] and g.nodes[0].provenance.rule == "t.neg-half"


def test_one_of_miss_names_the_forms_and_the_first_reason():
    g, changed, log = _apply(ONE_OF.replace("OP", "Div").replace("C", "3.0"), halves.rules)
    assert not changed and _ops(g) == ["Div", "Neg"]
    assert "neg (Neg): none of 2 forms fits; the closest: input 1 of Div 'op' %c: not 2" in log, log


def test_one_of_at_the_root_needs_one_op_type():
    with pytest.raises(TypeError, match="the root pattern must be an Op"):
        RuleSet("t").add("mixed", "-", OneOf(Op("Div", Var("x")), Op("Mul", Var("x"))), lambda rw, m: None)


def test_explain_narrows_to_one_pattern(capsys):
    # every Mul is a candidate site of both passes' rules; a string narrows the report
    g = parse_ir(SQUARE.replace("%A", "%y").replace("%B", "%x"))
    graphopt.run_passes(g, ["fuse-gelu", "fuse-swiglu"], explain=True)
    full = capsys.readouterr().err
    graphopt.run_passes(g, ["fuse-gelu", "fuse-swiglu"], explain="swiglu.silu")
    narrow = capsys.readouterr().err
    assert "rule fuse-gelu.tanh" in full and "rule fuse-swiglu.silu" in full
    assert "rule fuse-swiglu.silu" in narrow and "fuse-gelu" not in narrow and "fuse-swiglu.swiglu" not in narrow
