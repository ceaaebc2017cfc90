"""``graphopt.RotaryEmbedding``: rotary position embedding as transformers' models apply it
to queries and keys, with cos/sin as the model hands them over (full rotary width).

    Y[..., :R] = X[..., :R] * cos + rot(X[..., :R]) * sin
    Y[..., R:] = X[..., R:]                         (R = rotary_embedding_dim, 0 = all of D)

``rot`` is rotate_half (``interleaved=0``, Llama/NeoX: cat(-x2, x1) over the two halves) or
the GPT-J form (``interleaved=1``: each pair (x0, x1) becomes (-x1, x0)). ONNX opset 23's
RotaryEmbedding where it fits, but cos and sin are not a half-width cache indexed by
position ids: they are values broadcastable to X[..., :R] (HF's cat(freqs, freqs) tables,
(B, 1, S, D) against X (B, H, S, D)), so a fused site keeps the model's own cos/sin and
the op rounds exactly as the pattern did. The reference decomposition (opset-21 Slice, Neg,
Concat, Mul, Add) computes it in the pattern's order and dtype."""

from __future__ import annotations

from typing import Optional

import numpy as np

from ...ir import Graph, Node, TensorData, TensorType, Value
from ...ir.function import DOMAIN
from .. import flops
from ..registry import InferContext, PatternKind, attr_value, build, register, set_decomposition, set_traits
from ._shapes import fmt_shape
from ._specs import F, int_attr

ROTARY = "RotaryEmbedding"
_NAMES = ("X", "cos", "sin")


def rotary_dim(x_shape, rdim: int) -> int:
    """The rotated width R (rotary_embedding_dim, or the whole last dim when 0)."""
    return rdim if rdim else x_shape[-1]


def why_not_rotary(x: TensorType, cos: TensorType, sin: TensorType, interleaved: int = 0,
                   rdim: int = 0) -> Optional[str]:
    """None when (X, cos, sin) with these attributes are valid RotaryEmbedding inputs; else
    why not, naming the input at fault (inference raises it; fuse-rotary reports it)."""
    if x.dtype not in F:
        return f"input 0 (X) must be float, got {x.dtype.short}"
    for i, t in ((1, cos), (2, sin)):
        if t.dtype is not x.dtype:
            return f"input {i} ({_NAMES[i]}) is {t.dtype.short}, X is {x.dtype.short}"
    if interleaved not in (0, 1):
        return f"interleaved must be 0 or 1, got {interleaved}"
    if rdim < 0:
        return f"rotary_embedding_dim must be >= 0, got {rdim}"
    if x.shape is None:
        return None  # unknown rank: checked when it is known
    if not x.shape:
        return "input 0 (X) must have rank >= 1, got a scalar"
    d = x.shape[-1]
    if not isinstance(d, int):
        return f"input 0 (X) {fmt_shape(x.shape)}: the last dim (the head dim) must be known, got {d!r}"
    r = rotary_dim(x.shape, rdim)
    if r > d:
        return f"rotary_embedding_dim {r} is larger than X's last dim {d}"
    if r % 2:
        return f"the rotated width {r} is odd (X {fmt_shape(x.shape)}, rotary_embedding_dim {rdim})"
    xr = tuple(x.shape[:-1]) + (r,)
    for i, t in ((1, cos), (2, sin)):
        if t.shape is None:
            continue
        if len(t.shape) > len(xr) or any(c != 1 and c != xd for c, xd in zip(reversed(t.shape), reversed(xr))):
            return (f"input {i} ({_NAMES[i]}) {fmt_shape(t.shape)} does not broadcast to X[..., :{r}] "
                    f"{fmt_shape(xr)} without widening it")
    return None


@register(ROTARY, list(_NAMES), ["Y"], {"interleaved": int_attr(0), "rotary_embedding_dim": int_attr(0)},
          domain=DOMAIN)
def infer_rotary(ctx: InferContext):
    why = why_not_rotary(ctx.type(0), ctx.type(1), ctx.type(2), ctx.attr("interleaved"),
                         ctx.attr("rotary_embedding_dim"))
    if why:
        raise ctx.fail(f"RotaryEmbedding: {why}")
    return [TensorType(ctx.dtype(0), ctx.shape(0))]


def _ints(body: Graph, hint: str, vals) -> Value:
    return body.add_constant(body.fresh_name(hint), TensorData.from_numpy(np.array(vals, dtype=np.int64)))


def _slice(body: Graph, x: Value, start: int, end: int, step: int = 1) -> Value:
    ins = [x, _ints(body, "starts", [start]), _ints(body, "ends", [end]), _ints(body, "axes", [-1])]
    if step != 1:
        ins.append(_ints(body, "steps", [step]))
    return build(body, "Slice", ins).output


def rotate(body: Graph, xr: Value, interleaved: int) -> Value:
    """rotate_half(xr) = cat(-x2, x1), or GPT-J's pairs (x0, x1) -> (-x1, x0)."""
    r = xr.type.shape[-1]
    if not interleaved:
        x1, x2 = _slice(body, xr, 0, r // 2), _slice(body, xr, r // 2, r)
        return build(body, "Concat", [build(body, "Neg", [x2]).output, x1], {"axis": -1}).output
    even, odd = _slice(body, xr, 0, r, 2), _slice(body, xr, 1, r, 2)
    last = _ints(body, "axes", [-1])
    pairs = [build(body, "Unsqueeze", [build(body, "Neg", [odd]).output, last]).output,
             build(body, "Unsqueeze", [even, last]).output]
    stacked = build(body, "Concat", pairs, {"axis": -1}).output
    # 0 copies a leading dim (symbolic ones too): (..., R/2, 2) -> (..., R)
    shape = _ints(body, "shape", [0] * (len(xr.type.shape) - 1) + [r])
    return build(body, "Reshape", [stacked, shape]).output


def decompose_rotary(body: Graph, node: Node, ins: list) -> list:
    # x_r * cos + rot(x_r) * sin, then x[..., R:] passed through; the pattern's ops in its order
    x, cos, sin = ins
    d = x.type.shape[-1]
    r = rotary_dim(x.type.shape, attr_value(node, "rotary_embedding_dim"))
    xr = x if r == d else _slice(body, x, 0, r)
    rot = rotate(body, xr, attr_value(node, "interleaved"))
    y = build(body, "Add", [build(body, "Mul", [xr, cos]).output, build(body, "Mul", [rot, sin]).output]).output
    if r < d:
        y = build(body, "Concat", [y, _slice(body, x, r, d)], {"axis": -1}).output
    return [y]


def _rotary_flops(site: flops.FlopSite):
    """As the decomposition counts: two multiplies and an add per rotated element, a Neg
    over half of them; the pass-through part is a copy."""
    x = site.input(0)
    if x is None:
        return None
    r = rotary_dim(x, attr_value(site.node, "rotary_embedding_dim"))
    rotated = int(np.prod(x[:-1])) * r
    return 3 * rotated + rotated // 2


set_decomposition(ROTARY, decompose_rotary, domain=DOMAIN)
# Each output element reads fixed positions of X (its own and its rotation partner): injective.
set_traits([ROTARY], domain=DOMAIN, kind=PatternKind.INJECTIVE, flops=_rotary_flops)
__all__ = ["ROTARY", "decompose_rotary", "rotate", "rotary_dim", "why_not_rotary"]
