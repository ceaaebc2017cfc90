"""``graphopt.RMSNorm``, the first named fused op: Y = X / sqrt(mean(X^2 over the dims from
``axis`` on) + epsilon) * scale (ONNX's RMSNormalization of opset 23, which graphopt's
opset 21 lacks; LLaMA-family models spell it out in ops). Its reference decomposition into
opset-21 ops is what onnxruntime runs for it and what a lowering without its own kernel
compiles; float16 and bfloat16 inputs are normalized in float32 (stash_type 1, the only
one this op takes)."""

from __future__ import annotations

import numpy as np

from ...ir import Graph, Node, TensorData, Value
from ...ir.function import DOMAIN
from ...ir.types import DType
from .. import flops
from ..registry import InferContext, PatternKind, attr_value, build, register, set_decomposition, set_traits
from ._shapes import broadcast, check_dtype, fmt_shape, norm_axis, same_dtype, tt
from ._specs import F, float_attr, int_attr

RMS_NORM = "RMSNorm"


@register(RMS_NORM, ["X", "scale"], ["Y"], {"axis": int_attr(-1), "epsilon": float_attr(1e-5),
                                            "stash_type": int_attr(1)}, domain=DOMAIN)
def infer_rms_norm(ctx: InferContext):
    dt = same_dtype(ctx, [0, 1])
    check_dtype(ctx, 0, F)
    if ctx.attr("stash_type") != 1:
        raise ctx.fail(f"stash_type must be 1 (float32), got {ctx.attr('stash_type')}")
    x = ctx.shape(0)
    if x is not None:
        axis = norm_axis(ctx, ctx.attr("axis"), len(x))
        s = ctx.shape(1)
        if s is not None and len(broadcast(ctx, [x[axis:], s])) != len(x) - axis:
            raise ctx.fail(f"RMSNorm scale {fmt_shape(s)} does not broadcast to the normalized dims "
                           f"{fmt_shape(x[axis:])}")
    return [tt(dt, x)]


def _const(body: Graph, hint: str, arr: np.ndarray) -> Value:
    return body.add_constant(body.fresh_name(hint), TensorData.from_numpy(arr))


def decompose_rms_norm(body: Graph, node: Node, ins: list) -> list:
    # x / sqrt(mean(x*x, axes >= axis) + eps) * scale, in float32 for 16-bit floats
    x, scale = ins
    rank = len(x.type.shape)
    axis = attr_value(node, "axis") % rank
    dt = x.type.dtype
    low = dt in (DType.FLOAT16, DType.BFLOAT16)
    xs = build(body, "Cast", [x], {"to": DType.FLOAT32.onnx}).output if low else x
    work = DType.FLOAT32 if low else dt
    sq = build(body, "Mul", [xs, xs]).output
    axes = _const(body, "axes", np.arange(axis, rank, dtype=np.int64))
    ms = build(body, "ReduceMean", [sq, axes], {"keepdims": 1}).output
    eps = _const(body, "epsilon", np.array(attr_value(node, "epsilon"), dtype=work.numpy))
    rms = build(body, "Sqrt", [build(body, "Add", [ms, eps]).output]).output
    y = build(body, "Div", [xs, rms]).output
    if low:
        y = build(body, "Cast", [y], {"to": dt.onnx}).output
    return [build(body, "Mul", [y, scale]).output]


def _rms_norm_flops(site: flops.FlopSite):
    """Per element: square, accumulate, divide, scale (4); per row a sqrt and an add."""
    x = site.input(0)
    return None if x is None else 4 * int(np.prod(x))


set_decomposition(RMS_NORM, decompose_rms_norm, domain=DOMAIN)
set_traits([RMS_NORM], domain=DOMAIN, kind=PatternKind.REDUCTION, flops=_rms_norm_flops)
