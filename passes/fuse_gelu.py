"""Fuse the decomposed forms of GELU into ONNX's ``Gelu`` (opset 20).

    x * 0.5 * (1 + erf(x / sqrt(2)))                            = Gelu(x)
    x * 0.5 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))     = Gelu(x, approximate="tanh")

Exporters spell these out op by op (GPT-2's ``gelu_new`` through torch.onnx gives the tanh
form; older BERT exports the erf form). Each form matches with its constants on either side
of a commutative op, ``0.5`` applied to ``x`` or to the bracket, ``x / sqrt(2)`` written as
a Div or as a Mul by ``1/sqrt(2)``, and ``x^3`` as Pow(x, 3) or x * x * x. The constants
must be the form's own within float32 rounding (relative 1e-5): then the rewrite is exact
up to rounding, and a site whose constant differs is left alone with the constant's value
in its reason. ``x * sigmoid(1.702 * x)`` is another function (an approximation) and does
not become Gelu. Intermediate values used outside the pattern keep it from fusing (the
matcher's containment check names the other user). In -O2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from graphopt.ir import Graph
from graphopt.pipeline.base import Pass, PassContext, register_pass
from graphopt.rewrite import Const, OneOf, Op, RuleSet, Var, apply_rules

rules = RuleSet("fuse-gelu")

RTOL = 1e-5


def near(value: float, label: str) -> Callable[[np.ndarray], Optional[str]]:
    """A constant predicate: one element, a float, within RTOL of ``value``."""

    def check(a: np.ndarray) -> Optional[str]:
        if a.dtype.kind != "f":
            return f"is {a.dtype}, not a float"
        if a.size != 1:
            return f"has {a.size} elements, expected one ({label})"
        got = float(a.reshape(-1)[0])
        if not math.isclose(got, value, rel_tol=RTOL):
            return f"is {got:.6g}, expected {label} = {value:.6g} within {RTOL:g}"
        return None

    check.__name__ = f"near_{label}"
    return check


X = Var("x")
HALF = Const("half", near(0.5, "0.5"))
ONE = Const("one", near(1.0, "1"))


def _gelu_of(inner):
    """x * 0.5 * (1 + inner), in the three ways exporters apply 0.5 and x to the bracket."""
    bracket = Op("Add", inner, ONE, name="plus_one")
    return OneOf(
        Op("Mul", Op("Mul", X, HALF), bracket, name="out"),     # (x * 0.5) * b
        Op("Mul", X, Op("Mul", bracket, HALF), name="out"),     # x * (b * 0.5)
        Op("Mul", Op("Mul", X, bracket), HALF, name="out"),     # (x * b) * 0.5
    )


ERF_ARG = OneOf(
    Op("Div", X, Const("sqrt2", near(math.sqrt(2.0), "sqrt(2)"))),         # x / sqrt(2)
    Op("Mul", X, Const("rsqrt2", near(1 / math.sqrt(2.0), "1/sqrt(2)"))),  # x * (1/sqrt(2))
)
CUBE = OneOf(
    Op("Pow", X, Const("three", near(3.0, "3"))),                          # x^3
    Op("Mul", X, Op("Mul", X, X)),                                          # x * (x * x)
    Op("Mul", Op("Mul", X, X), X),                                          # (x * x) * x
)
# sqrt(2/pi) * (x + 0.044715 * x^3)
TANH_ARG = Op("Mul", Op("Add", X, Op("Mul", CUBE, Const("c", near(0.044715, "0.044715")))),
              Const("k", near(math.sqrt(2.0 / math.pi), "sqrt(2/pi)")))


def _gelu(approximate: str):
    def replace(rw, m):
        return rw.op("Gelu", [m.x], {"approximate": approximate}, name=m.out.name).output

    return replace


rules.add("erf", "x * 0.5 * (1 + erf(x / sqrt(2))) -> Gelu(x)", _gelu_of(Op("Erf", ERF_ARG)), _gelu("none"))
rules.add("tanh", "x * 0.5 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3))) -> Gelu(x, approximate=tanh)",
          _gelu_of(Op("Tanh", TANH_ARG)), _gelu("tanh"))


@register_pass
@dataclass
class FuseGelu(Pass):
    name = "fuse-gelu"
    summary = "fuse the erf and tanh forms of GELU into Gelu (exact up to float rounding)"

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        return apply_rules(graph, ctx, rules.rules)
