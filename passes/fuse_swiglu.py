"""Fuse SiLU and the gated MLP of LLaMA-family models into graphopt's named ops.

    x * sigmoid(x)    = SiLU(x)
    SiLU(g) * u       = SwiGLU(g, u)

torch.onnx exports ``F.silu`` as Sigmoid and Mul, and LLaMA's MLP as
``down(silu(gate(x)) * up(x))``. The named ops are elementwise and lower in place (TVM fuses
them into the matmul epilogues as it did the ops they replace); what they add is a graph a
person reads as the model, and the sites a later MLP kernel anchors on. Exact: the same
ops in the same order. In -O2.
"""

from __future__ import annotations

from dataclasses import dataclass

from graphopt.ir import Graph
from graphopt.ir.function import DOMAIN
from graphopt.ops.defs.swiglu import SILU, SWIGLU
from graphopt.pipeline.base import Pass, PassContext, register_pass
from graphopt.rewrite import Op, RuleSet, Var, apply_rules

rules = RuleSet("fuse-swiglu")


def _named(op: str, *inputs):
    def replace(rw, m):
        rw.graph.root.opset_imports.setdefault(DOMAIN, 1)
        return rw.op(op, [m[i] for i in inputs], domain=DOMAIN, name=m.out.name).output

    return replace


rules.add("silu", "x * sigmoid(x) -> SiLU(x)", Op("Mul", Var("x"), Op("Sigmoid", Var("x")), name="out"),
          _named(SILU, "x"), where=lambda m: None if m.x.type.dtype.is_float else f"%{m.x.name} is not a float")
rules.add("swiglu", "SiLU(g) * u -> SwiGLU(g, u)",
          Op("Mul", Op(SILU, Var("g"), domain=DOMAIN), Var("u"), name="out"), _named(SWIGLU, "g", "u"),
          where=lambda m: None if m.g.type.dtype is m.u.type.dtype else "gate and up differ in dtype")


@register_pass
@dataclass
class FuseSwiGLU(Pass):
    name = "fuse-swiglu"
    summary = "fuse x*sigmoid(x) into graphopt.SiLU and SiLU(g)*u into graphopt.SwiGLU (exact)"

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        return apply_rules(graph, ctx, rules.rules)
