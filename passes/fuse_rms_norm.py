"""Fuse the decomposed forms of RMS normalization into ``graphopt.RMSNorm``.

    x * (1 / sqrt(mean(x^2, axes >= a) + eps))   = RMSNorm(x, 1, axis=a, epsilon=eps)
    x / sqrt(mean(x^2, axes >= a) + eps)         = RMSNorm(x, 1, axis=a, epsilon=eps)
    RMSNorm(x, s) * w                            = RMSNorm(x, s * w)   (w over the normalized dims)

LLaMA-family models spell RMSNorm out (torch.onnx gives Pow, ReduceMean, Add, Sqrt,
Reciprocal, Mul for ``x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)``, then a Mul by
the weight, which simplify has already removed when the weight is all ones). ``x^2`` may be
Pow(x, 2) or x * x, ``1/sqrt`` Reciprocal(Sqrt) or Div(1, Sqrt); the reduced axes must be the
last ones, kept (keepdims=1), and eps a positive scalar constant. Float32 and float64 only:
a float16 model normalizes in float32 between Casts, a form left for later. Intermediates
used outside the pattern keep it from fusing (the matcher names the other user). Rounds
like the decomposition it replaces (the oracle's tolerance). In -O2.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from graphopt.ir import Graph
from graphopt.ir.function import DOMAIN
from graphopt.ops.defs.rms_norm import RMS_NORM
from graphopt.pipeline.base import Pass, PassContext, register_pass
from graphopt.rewrite import Bind, Const, OneOf, Op, RuleSet, Var, apply_rules

from .norm_patterns import float_tensor, positive_scalar, reduced_axes, scalar, trailing_axes

rules = RuleSet("fuse-rms-norm")

X = float_tensor("x")


SQUARE = OneOf(Op("Pow", X, Const("two", scalar(2.0))), Op("Mul", X, X))
MEAN_SQ_EPS = Op("Add", Op("ReduceMean", SQUARE, Const("axes"), name="mean", keepdims=1), Const("eps", positive_scalar))
SQRT = Op("Sqrt", MEAN_SQ_EPS)


def _rms_norm(rw, m, scale: np.ndarray, axis: int):
    rw.graph.root.opset_imports.setdefault(DOMAIN, 1)
    eps = float(m.array("eps").reshape(-1)[0])
    return rw.op(RMS_NORM, [m.x, rw.const(scale, hint="rms_scale")], {"axis": axis, "epsilon": eps},
                 domain=DOMAIN, name=m.out.name).output


def _unscaled(rw, m):
    rank = len(m.x.type.shape)
    axis = reduced_axes(m, "x", "axes")[0]
    return _rms_norm(rw, m, np.ones(m.x.type.shape[axis:], m.x.type.dtype.numpy), axis - rank)


def _fits(m) -> Optional[str]:
    return trailing_axes(m, "x", "axes", "mean")


rules.add("mul-rsqrt", "x * (1 / sqrt(mean(x^2) + eps)) -> RMSNorm(x, 1)",
          Op("Mul", X, OneOf(Op("Reciprocal", SQRT), Op("Div", Const("one", scalar(1.0)), SQRT)), name="out"),
          _unscaled, where=_fits)
rules.add("div-sqrt", "x / sqrt(mean(x^2) + eps) -> RMSNorm(x, 1)",
          Op("Div", X, SQRT, name="out"), _unscaled, where=_fits)


def _scale_fits(m) -> Optional[str]:
    """w broadcasts to the normalized dims and does not widen the output."""
    norm = m.norm
    shape = norm.inputs[0].type.shape
    axis = int(m.axis) % len(shape)
    w = m.array("w")
    dims = list(shape[axis:])
    if w.ndim > len(dims):
        return f"the weight's shape {list(w.shape)} has more dims than the normalized {dims}"
    padded = [1] * (len(dims) - w.ndim) + list(w.shape)
    if any(p not in (1, d) for p, d in zip(padded, dims)):
        return f"the weight's shape {list(w.shape)} does not broadcast to the normalized dims {dims}"
    if m.w.type.dtype is not norm.outputs[0].type.dtype:
        return f"the weight is {m.w.type.dtype.short}, the normalized value {norm.outputs[0].type.dtype.short}"
    return None


def _rescale(rw, m):
    norm = m.norm
    dims = norm.inputs[0].type.shape[int(m.axis) % len(norm.inputs[0].type.shape):]
    s = np.broadcast_to(m.array("s") * m.array("w"), dims).astype(m.array("s").dtype)
    return rw.op(RMS_NORM, [norm.inputs[0], rw.const(np.ascontiguousarray(s), hint="rms_scale")],
                 {"axis": int(m.axis), "epsilon": float(m.epsilon)}, domain=DOMAIN, name=m.out.name).output


rules.add("scale", "RMSNorm(x, s) * w -> RMSNorm(x, s * w), w over the normalized dims",
          Op("Mul", Op(RMS_NORM, Var("xn"), Const("s"), domain=DOMAIN, name="norm", axis=Bind("axis"),
                       epsilon=Bind("epsilon")), Const("w"), name="out"),
          _rescale, where=_scale_fits)


@register_pass
@dataclass
class FuseRMSNorm(Pass):
    name = "fuse-rms-norm"
    summary = "fuse the decomposed forms of RMS normalization (and a weight after it) into graphopt.RMSNorm"

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        return apply_rules(graph, ctx, rules.rules)
