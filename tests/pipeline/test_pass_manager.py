"""The pass manager: registry, options, pipelines, the changed/journal cross-check, and
the instruments (verify-each, time-passes, dumps, check-numerics, bisect limit, explain)."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import onnx
import pytest

import graphopt
from graphopt.ir import TensorData
from graphopt.ir.parser import parse_ir
from graphopt.ir.printer import print_ir
from graphopt.pipeline import (Const, Fixpoint, NumericsMismatchError, Op, Pass, PassFailedError, PassOptionError,
                               PassVerificationError, RuleSet, UnknownPassError, Var, apply_rules, build_pipeline,
                               get_pass, register_pass, registered_passes, run_passes, run_pipeline, unregister_pass)

SRC = '''graph main(%x: f32[2, 3]) opset("": 21) {
  const %one: f32[1] = dense<[1.0]>
  const %dead: f32[1] = dense<[5.0]>
  %a: f32[2, 3] = Identity(%x) @identity
  %b: f32[2, 3] = Mul(%a, %one) @mul_one
  %c: f32[2, 3] = Relu(%b) @relu
  %d: f32[2, 3] = Relu(%b) @relu_dup
  %e: f32[2, 3] = Add(%c, %d) @add
  return %e
}'''


def graph():
    return parse_ir(SRC)


def test_registry_names_and_summaries():
    names = [p.name for p in registered_passes()]
    assert {"fold-constants", "dce", "cse", "simplify"} <= set(names)
    for p in registered_passes():
        assert p.summary and "\n" not in p.summary


def test_options_typed_and_checked():
    p = build_pipeline("fold-constants{max-elements=0x10}")[0]
    assert p.max_elements == 16 and p.describe() == "fold-constants{max-elements=16}"
    with pytest.raises(PassOptionError, match="max-elementz"):
        build_pipeline("fold-constants{max-elementz=1}")
    with pytest.raises(PassOptionError, match="takes a int"):
        build_pipeline("fold-constants{max-elements=lots}")
    with pytest.raises(UnknownPassError, match="did you mean 'dce'"):
        build_pipeline("dcee")
    items = build_pipeline("O1", options={"fold-constants": {"max-elements": 7}})
    assert items[0].items[1].max_elements == 7


def test_named_pipelines_and_disable():
    assert build_pipeline("O0") == [] and build_pipeline("-O0") == []
    o1 = build_pipeline("-O1")
    assert isinstance(o1[0], Fixpoint) and [p.name for p in o1[0].items] == ["simplify", "fold-constants", "cse", "dce"]
    o1 = build_pipeline("O1", disable=["cse"])
    assert [p.name for p in o1[0].items] == ["simplify", "fold-constants", "dce"]
    with pytest.raises(UnknownPassError):
        build_pipeline("O1", disable=["nope"])
    with pytest.raises(UnknownPassError, match="not defined yet"):
        build_pipeline("O3")
    o2 = build_pipeline("O2")
    assert [type(i).__name__ for i in o2] == ["Fixpoint", "FuseConvBN", "FuseGelu", "FuseLayerNorm", "FuseRMSNorm", "FuseSwiGLU",
                                           "FuseRotary", "FuseAttention", "FuseCacheWrite",
                                           "Fixpoint", "GroupKernels"]
    assert [type(i).__name__ for i in build_pipeline("fixpoint(simplify,dce),cse")] == ["Fixpoint", "CommonSubexpressionElimination"]


def test_run_passes_o1_and_o0():
    g = graph()
    assert run_passes(g, "O0") is g and print_ir(g) == print_ir(parse_ir(SRC))
    g = run_passes(graph(), "O1", verify_each=True)
    assert [n.op_type for n in g.nodes] == ["Relu", "Add"]
    assert [c.name for c in g.constants] == []
    assert g.outputs[0].name == "e"


def test_fixpoint_repeats_until_nothing_changes():
    run = run_pipeline(graph(), [Fixpoint([get_pass("simplify")(), get_pass("cse")(), get_pass("dce")()])])
    changed = [r.changed for r in run.records]
    assert changed[-3:] == [False, False, False] and any(changed)


def test_a_pass_that_lies_about_changes_is_caught():
    @dataclass
    class Liar(Pass):
        name = "liar"
        summary = "changes the graph and says it did not"

        def run(self, graph, ctx):
            graph.add_constant(graph.fresh_name("junk"), TensorData.from_numpy(np.zeros(1, np.float32)))
            return False

    with pytest.raises(PassFailedError, match="pass 'liar' reported no change but changed the graph"):
        run_passes(graph(), [Liar()])

    @dataclass
    class Boaster(Pass):
        name = "boaster"
        summary = "says it changed the graph and did not"

        def run(self, graph, ctx):
            return True

    with pytest.raises(PassFailedError, match="journal is empty"):
        run_passes(graph(), [Boaster()])


def test_a_pass_that_crashes_is_an_internal_error_naming_it(tmp_path, capsys, monkeypatch):
    from graphopt.errors import GraphoptError, InternalError

    @dataclass
    class Crasher(Pass):
        name = "crasher"
        summary = "raises an exception it did not mean to"

        def run(self, graph, ctx):
            return {}["missing"]

    with pytest.raises(InternalError, match=r"internal error in pass 'crasher' \(invocation 1\): KeyError") as e:
        run_passes(graph(), [Crasher()])
    assert not isinstance(e.value, GraphoptError)  # nothing may catch a bug as a user error
    assert "--debug" in str(e.value)

    # On the command line: exit 3, one line naming the pass, the traceback only with --debug.
    from graphopt.cli import main

    # --debug sets GRAPHOPT_DEBUG in this process; undone after the test, or every later
    # test in the worker would see TVM's native log lines
    monkeypatch.setenv("GRAPHOPT_DEBUG", "")

    path = tmp_path / "m.onnx"
    onnx.save(graphopt.export_onnx(graph()), path)
    register_pass(Crasher)
    try:
        assert main(["opt", str(path), "--passes", "crasher", "-o", str(tmp_path / "o.onnx")]) == 3
        err = capsys.readouterr().err
        assert "internal error in pass 'crasher'" in err and "Traceback" not in err and len(err.splitlines()) == 1
        assert not (tmp_path / "o.onnx").exists()
        assert main(["--debug", "opt", str(path), "--passes", "crasher", "-o", str(tmp_path / "o.onnx")]) == 3
        assert "Traceback" in capsys.readouterr().err
    finally:
        unregister_pass("crasher")


def test_verify_each_names_the_pass():
    @dataclass
    class Breaker(Pass):
        name = "breaker"
        summary = "retypes a value wrongly"

        def run(self, graph, ctx):
            from graphopt.ir import DType, TensorType

            graph.set_output_type(graph.nodes[0].output, TensorType(DType.FLOAT32, (7,)))
            return True

    with pytest.raises(PassVerificationError, match="after pass 'breaker' \\(invocation 1\\)"):
        run_passes(graph(), [Breaker()], verify_each=True)


def _broken_relu_pass():
    rs = RuleSet("broken")
    # deliberately wrong: Relu(x) -> x
    rs.add("drop-relu", "Relu(x) -> x (WRONG)", Op("Relu", Var("x")), lambda rw, m: m.x)

    @dataclass
    class Broken(Pass):
        name = "broken"
        summary = "a deliberately wrong rule"

        def run(self, graph, ctx):
            return apply_rules(graph, ctx, rs.rules)

    return Broken()


def test_check_numerics_stops_and_names_the_pass():
    with pytest.raises(NumericsMismatchError, match="numbers changed after pass 'broken'") as e:
        run_passes(graph(), ["simplify", _broken_relu_pass(), "dce"], check_numerics=True, seed=3)
    assert e.value.pass_name == "broken"
    # given inputs are checked against the graph's
    with pytest.raises(NumericsMismatchError, match="missing x"):
        run_passes(graph(), ["dce"], check_numerics=True, inputs={"y": np.zeros(2)})


def test_time_passes_table():
    out = io.StringIO()
    run = run_pipeline(graph(), "O1", time_passes=out)
    text = out.getvalue()
    assert "pass timing" in text and "nodes before" in text and "fold-constants" in text
    assert run.timing.records[0].nodes_before == 5


def test_dumps_numbered_in_three_formats(tmp_path):
    run_passes(graph(), ["simplify", "dce"], dump_ir="after-all", dump_dir=tmp_path, dump_formats=("ir", "onnx", "dot"))
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["000-input.dot", "000-input.ir", "000-input.onnx", "001-simplify.dot", "001-simplify.ir",
                     "001-simplify.onnx", "002-dce.dot", "002-dce.ir", "002-dce.onnx"]
    text = (tmp_path / "001-simplify.ir").read_text()
    assert print_ir(parse_ir(text)) == text
    onnx.checker.check_model(onnx.load(str(tmp_path / "002-dce.onnx")))
    assert (tmp_path / "002-dce.dot").read_text().startswith("digraph")
    # only after named passes
    d2 = tmp_path / "named"
    run_passes(graph(), ["simplify", "cse", "dce"], dump_ir=["cse"], dump_dir=d2)
    assert sorted(p.name for p in d2.iterdir()) == ["000-input.ir", "002-cse.ir"]


def test_bisect_limit_counts_applications_across_passes():
    full = run_pipeline(graph(), "O1")
    total = full.ctx.count
    assert total >= 5
    seen = []
    for n in range(total + 1):
        run = run_pipeline(graph(), "O1", bisect_limit=n, verify_each=True)
        assert run.ctx.count == n
        seen.append(len(run.graph.nodes))
    assert seen[0] == 5 and seen[-1] == 2
    assert [a.index for a in full.applications] == list(range(1, total + 1))


def test_explain_reports_hits_and_misses():
    out = io.StringIO()
    run_passes(graph(), ["simplify"], explain=out)
    text = out.getvalue()
    assert "rule simplify.identity: Identity(x) -> x" in text
    assert "applied 1 time(s): identity (Identity)" in text
    # Add is commutative: one rule, and its miss gives the reason for both operand orders.
    assert ("rule simplify.add-zero" in text and "add (Add): input 1 of Add 'add' %d is not a constant "
            "(with the operands swapped: input 0 of Add 'add' %c is not a constant)" in text)


def test_rewrite_records_provenance_and_match_reasons():
    g = parse_ir('''graph main(%x: f32[2, 3, 4]) opset("": 21) {
  %t1: f32[4, 3, 2] = Transpose(%x) {perm=[2, 1, 0]} @t1
  %t2: f32[3, 4, 2] = Transpose(%t1) {perm=[1, 0, 2]} @t2
  %r: f32[3, 4, 2] = Relu(%t2) @relu
  return %r
}''')
    from graphopt.passes.simplify import RULES

    rule = next(r for r in RULES if r.name == "simplify.transpose-transpose")
    m = rule.match(g.nodes[0])
    assert not m and "input 0 of Transpose 't1' %x is a graph input, not produced by Transpose" == m.reason
    run_passes(g, ["simplify", "dce"], verify_each=True)
    [t] = [n for n in g.nodes if n.op_type == "Transpose"]
    assert t.attr("perm") == (1, 2, 0)
    assert t.provenance.rule == "simplify.transpose-transpose" and t.provenance.sources == ("t2", "t1")
