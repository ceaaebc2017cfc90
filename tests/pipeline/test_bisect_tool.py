"""The bisect tool finds a deliberately broken rule planted among correct rewrites, from
Python and from the command line."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

import numpy as np

from graphopt.io import save_graph
from graphopt.ir.parser import parse_ir
from graphopt.pipeline import Op, Pass, RuleSet, Var, apply_rules, bisect, register_pass, unregister_pass

SRC = '''graph main(%x: f32[2, 3]) opset("": 21) {
  const %one: f32[1] = dense<[1.0]>
  const %zero: f32[3] = dense<[0.0, 0.0, 0.0]>
  const %two: f32[1] = dense<[2.0]>
  %a: f32[2, 3] = Identity(%x) @identity
  %b: f32[2, 3] = Mul(%a, %one) @mul_one
  %c: f32[2, 3] = Sub(%b, %zero) @sub_zero
  %d: f32[2, 3] = Mul(%c, %two) @planted_site
  %e: f32[2, 3] = Relu(%d) @relu
  %f: f32[2, 3] = Identity(%e) @identity2
  %g: f32[2, 3] = Exp(%f) @exp
  return %g
}'''

broken = RuleSet("broken")
# deliberately wrong: x * c -> x for any constant c (right only when c is all ones)
broken.add("mul-by-const", "x * c -> x (WRONG unless c == 1)", Op("Mul", Var("x"), Var("c", lambda v: None if v.is_constant else "not constant")),
           lambda rw, m: m.x, where=lambda m: None if m.x.type == m.root.output.type else "would broadcast")


@dataclass
class BrokenPass(Pass):
    name = "broken-simplify"
    summary = "a deliberately wrong rule, for the bisect test"

    def run(self, graph, ctx):
        return apply_rules(graph, ctx, broken.rules)


def test_bisect_finds_the_planted_rule():
    # simplify does the correct rewrites first (identity, x*1, x-0), then the broken pass
    # rewrites the Mul by 2.
    res = bisect(lambda: parse_ir(SRC), ["simplify", BrokenPass(), "dce"], seed=0)
    assert res.culprit is not None, res.format()
    assert res.culprit.rule == "broken.mul-by-const"
    assert res.culprit.nodes == ("planted_site (Mul)",)
    assert res.culprit.pass_name == "broken-simplify"
    assert res.total > res.culprit.index >= 4  # the correct rewrites before it were kept
    text = res.format()
    assert "rule:  broken.mul-by-const" in text and "planted_site" in text


def test_bisect_reports_nothing_when_the_numbers_hold():
    res = bisect(lambda: parse_ir(SRC), "O1")
    assert res.culprit is None and not res.mismatch and res.total > 0


def test_bisect_cli(tmp_path):
    model = tmp_path / "m.onnx"
    save_graph(parse_ir(SRC), model)
    script = f"""
import sys
sys.path.insert(0, {str(__import__('pathlib').Path(__file__).parent)!r})
from graphopt.pipeline import register_pass
from test_bisect_tool import BrokenPass
register_pass(BrokenPass)
from graphopt.cli import main
sys.exit(main(["bisect", {str(model)!r}, "--passes", "simplify,broken-simplify,dce"]))
"""
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert p.returncode == 1, p.stderr
    assert "rule:  broken.mul-by-const" in p.stdout and "planted_site (Mul)" in p.stdout
