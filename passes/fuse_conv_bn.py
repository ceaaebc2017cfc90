"""Fold per-channel affine ops that follow a convolution into its weights and bias.

    BatchNormalization(Conv(x, W, b), scale, bias, mean, var)
        = Conv(x, W * s, (b - mean) * s + bias)     with s = scale / sqrt(var + eps)
    Mul(Conv(x, W, b), c) = Conv(x, W * c, b * c)   c per output channel
    Add(Conv(x, W, b), d) = Conv(x, W, b + d)       d per output channel

Not bit-exact: the folded weights are rounded once to float32 (computed in float64), so
results move by float32 rounding, within the oracle's float32 tolerance; that is why this
is an -O2 pass and not part of -O1's exact cleanup. Conditions: W (and b, and the affine
parameters) are float constants; the conv's output has no other user (else the conv would
be computed twice: the matcher's containment check refuses such a site and says which node
also uses it); the per-channel operand broadcasts only along the channel axis. Mul and Add
match with the conv on either side (they are commutative).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from graphopt.ir import Graph, Value
from graphopt.pipeline.base import Pass, PassContext, register_pass
from graphopt.rewrite import Const, Op, Opt, RuleSet, Var, apply_rules

rules = RuleSet("fuse-conv-bn")


def _float_const(a: np.ndarray) -> Optional[str]:
    return None if a.dtype in (np.float32, np.float64, np.float16) else f"is {a.dtype}, not a float"


def _per_channel(m, key: str) -> Optional[str]:
    """The operand, broadcast against the conv's output [N, C, ...], varies only along C."""
    c = m[key].type.shape
    out = m.conv.output.type.shape
    channels = m.w.type.shape[0]
    if out is None or len(c) > len(out):
        return f"%{m[key].name}'s shape {list(c)} would broadcast the conv's output"
    padded = [1] * (len(out) - len(c)) + list(c)
    if any(d != 1 for i, d in enumerate(padded) if i != 1) or padded[1] not in (1, channels):
        return f"%{m[key].name}'s shape {list(c)} is not per output channel"
    return None


def _channel_vector(m, key: str) -> np.ndarray:
    """The per-channel operand as a float64 vector of length C."""
    a = m.array(key).astype(np.float64).reshape(-1)
    return np.broadcast_to(a, (m.w.type.shape[0],)) if a.size == 1 else a


def _conv(rw, m, w: np.ndarray, b: np.ndarray) -> Value:
    dt = m.array("w").dtype
    attrs = dict(m.conv.attrs)
    wv = rw.const(w.astype(dt), hint=f"{m.w.name.removesuffix('_fused')}_fused")
    bv = rw.const(b.astype(dt), hint=f"{m.conv.name}_bias_fused")
    return rw.op("Conv", [m.x, wv, bv], attrs, name=m.conv.name).output


def _bias(m) -> np.ndarray:
    return m.array("b").astype(np.float64) if m.bindings.get("b") is not None else np.zeros(m.w.type.shape[0])


def _scale_weights(w: np.ndarray, s: np.ndarray) -> np.ndarray:
    return w.astype(np.float64) * s.reshape((-1,) + (1,) * (w.ndim - 1))


CONV = Op("Conv", Var("x"), Const("w", _float_const), Opt(Const("b", _float_const)), name="conv")


@rules.rule("batchnorm", "BatchNormalization(Conv(x, W, b), g, beta, mu, var) -> Conv(x, W*s, (b-mu)*s+beta), "
            "s = g/sqrt(var+eps)",
            Op("BatchNormalization", CONV, Const("scale", _float_const), Const("shift", _float_const),
               Const("mean", _float_const), Const("var", _float_const), name="bn", training_mode=0))
def _fold_bn(rw, m):
    eps = float(m.bn.attr("epsilon", 1e-5))
    s = m.array("scale").astype(np.float64) / np.sqrt(m.array("var").astype(np.float64) + eps)
    b = (_bias(m) - m.array("mean").astype(np.float64)) * s + m.array("shift").astype(np.float64)
    return _conv(rw, m, _scale_weights(m.array("w"), s), b)


@rules.rule("mul", "Mul(Conv(x, W, b), c) -> Conv(x, W*c, b*c), c per output channel",
            Op("Mul", CONV, Const("c", _float_const)), where=lambda m: _per_channel(m, "c"))
def _fold_mul(rw, m):
    c = _channel_vector(m, "c")
    return _conv(rw, m, _scale_weights(m.array("w"), c), _bias(m) * c)


@rules.rule("add", "Add(Conv(x, W, b), d) -> Conv(x, W, b+d), d per output channel",
            Op("Add", CONV, Const("d", _float_const)), where=lambda m: _per_channel(m, "d"))
def _fold_add(rw, m):
    return _conv(rw, m, m.array("w").astype(np.float64), _bias(m) + _channel_vector(m, "d"))


@register_pass
@dataclass
class FuseConvBN(Pass):
    name = "fuse-conv-bn"
    summary = "fold BatchNormalization and per-channel Mul/Add after a Conv into its weights (float rounding)"

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        return apply_rules(graph, ctx, rules.rules)
