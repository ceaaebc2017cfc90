"""Fuse the decomposed forms of layer normalization into ONNX's ``LayerNormalization``.

    d = x - mean(x, axes >= a)
    d / sqrt(mean(d^2, axes >= a) + eps) * scale + bias  = LayerNormalization(x, scale, bias, axis=a, epsilon=eps)

    LayerNormalization(x, s, b) * w = LayerNormalization(x, s*w, b*w)
    LayerNormalization(x, s, b) + c = LayerNormalization(x, s, b + c)   (w, c over the normalized dims)

Exporters at opsets before 17 (and hand-written norms) spell it out: ReduceMean, Sub, Pow(d, 2)
or d * d, ReduceMean, Add eps, Sqrt, then Div by it or Mul by its Reciprocal; then maybe a
scale Mul and a bias Add, which the last two rules fold in (so a norm without them fuses
too). Both means must reduce the same trailing axes with keepdims, eps must be a positive
scalar constant, scale and bias constants over the normalized dims. Float32 and float64
only. Intermediates used outside the pattern keep it from fusing (the matcher names the
other user). Rounds like the decomposition it replaces (the oracle's tolerance). In -O2.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from graphopt.ir import Graph
from graphopt.pipeline.base import Pass, PassContext, register_pass
from graphopt.rewrite import Bind, Const, OneOf, Op, Opt, RuleSet, Var, apply_rules

from .norm_patterns import float_tensor, positive_scalar, reduced_axes, scalar, trailing_axes

rules = RuleSet("fuse-layer-norm")

X = float_tensor("x")


D = Op("Sub", X, Op("ReduceMean", X, Const("axes1"), name="mean1", keepdims=1), name="centered")
SQRT = Op("Sqrt", Op("Add", Op("ReduceMean", OneOf(Op("Pow", D, Const("two", scalar(2.0))), Op("Mul", D, D)),
                                  Const("axes2"), name="mean2", keepdims=1), Const("eps", positive_scalar)))


def _fits(m) -> Optional[str]:
    a1, a2 = reduced_axes(m, "x", "axes1"), reduced_axes(m, "x", "axes2")
    if a2 != a1:
        return f"the two means reduce different axes ({a1} and {a2})"
    return trailing_axes(m, "x", "axes1", "mean1")


def _layer_norm(rw, m):
    rank = len(m.x.type.shape)
    axis = reduced_axes(m, "x", "axes1")[0]
    scale = np.ones(m.x.type.shape[axis:], m.x.type.dtype.numpy)
    eps = float(m.array("eps").reshape(-1)[0])
    return rw.op("LayerNormalization", [m.x, rw.const(scale, hint="ln_scale")], {"axis": axis - rank, "epsilon": eps},
                 name=m.out.name).output


rules.add("div-sqrt", "(x - mean(x)) / sqrt(mean((x - mean(x))^2) + eps) -> LayerNormalization(x, 1)",
          Op("Div", D, SQRT, name="out"), _layer_norm, where=_fits)
rules.add("mul-rsqrt", "(x - mean(x)) * (1 / sqrt(mean((x - mean(x))^2) + eps)) -> LayerNormalization(x, 1)",
          Op("Mul", D, Op("Reciprocal", SQRT), name="out"), _layer_norm, where=_fits)

LN = Op("LayerNormalization", Var("xn"), Const("s"), Opt(Const("b")), name="ln", axis=Bind("axis"))


def _over_normalized(key: str):
    def check(m) -> Optional[str]:
        shape = m.ln.inputs[0].type.shape
        dims = list(shape[int(m.axis) % len(shape):])
        w = m.array(key)
        padded = [1] * (len(dims) - w.ndim) + list(w.shape)
        if w.ndim > len(dims) or any(p not in (1, d) for p, d in zip(padded, dims)):
            return f"%{m[key].name}'s shape {list(w.shape)} does not broadcast to the normalized dims {dims}"
        if m[key].type.dtype is not m.ln.outputs[0].type.dtype:
            return f"%{m[key].name} is {m[key].type.dtype.short}, the normalized value {m.ln.outputs[0].type.dtype.short}"
        return None

    return check


def _refit(rw, m, scale: np.ndarray, bias: Optional[np.ndarray]):
    shape = m.ln.inputs[0].type.shape
    dims = tuple(shape[int(m.axis) % len(shape):])
    dt = m.array("s").dtype

    def c(a, hint):
        return rw.const(np.ascontiguousarray(np.broadcast_to(a, dims).astype(dt)), hint=hint)

    ins = [m.xn, c(scale, "ln_scale")] + ([c(bias, "ln_bias")] if bias is not None else [])
    attrs = {k: a for k, a in m.ln.attrs.items()}
    return rw.op("LayerNormalization", ins, attrs, name=m.out.name).output


def _bias(m) -> Optional[np.ndarray]:
    return m.array("b") if m.get("b") is not None else None


# LN(x, s, b) * w = LN(x, s*w, b*w), w over the normalized dims
rules.add("scale", "LayerNormalization(x, s, b) * w -> LayerNormalization(x, s*w, b*w)",
          Op("Mul", LN, Const("w"), name="out"),
          lambda rw, m: _refit(rw, m, m.array("s") * m.array("w"), None if _bias(m) is None else _bias(m) * m.array("w")),
          where=_over_normalized("w"))
# LN(x, s, b) + c = LN(x, s, b + c), c over the normalized dims
rules.add("bias", "LayerNormalization(x, s, b) + c -> LayerNormalization(x, s, b + c)",
          Op("Add", LN, Const("c"), name="out"),
          lambda rw, m: _refit(rw, m, m.array("s"), m.array("c") + (0 if _bias(m) is None else _bias(m))),
          where=_over_normalized("c"))
@register_pass
@dataclass
class FuseLayerNorm(Pass):
    name = "fuse-layer-norm"
    summary = "fuse the decomposed forms of layer normalization into LayerNormalization"

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        return apply_rules(graph, ctx, rules.rules)
