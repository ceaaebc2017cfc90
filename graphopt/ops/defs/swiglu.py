"""``graphopt.SiLU`` (x * sigmoid(x), torch's SiLU / Swish-1) and ``graphopt.SwiGLU``
(silu(gate) * up, the gated MLP of LLaMA-family models): named fused ops whose reference
decompositions are Sigmoid and Mul. Elementwise, so a lowering keeps them fusable with the
matmuls around them."""

from __future__ import annotations

from ...ir import Graph, Node
from ...ir.function import DOMAIN
from ...ir.types import TensorType
from .. import flops
from ..registry import InferContext, PatternKind, build, register, set_decomposition, set_traits
from ._shapes import broadcast, check_dtype, same_dtype
from ._specs import F

SILU = "SiLU"
SWIGLU = "SwiGLU"


@register(SILU, ["X"], ["Y"], {}, domain=DOMAIN)
def infer_silu(ctx: InferContext):
    return [TensorType(check_dtype(ctx, 0, F), ctx.shape(0))]


@register(SWIGLU, ["gate", "up"], ["Y"], {}, domain=DOMAIN)
def infer_swiglu(ctx: InferContext):
    dt = same_dtype(ctx, [0, 1])
    check_dtype(ctx, 0, F)
    return [TensorType(dt, broadcast(ctx, [ctx.shape(0), ctx.shape(1)]))]


def decompose_silu(body: Graph, node: Node, ins: list) -> list:
    # x * sigmoid(x)
    (x,) = ins
    return [build(body, "Mul", [x, build(body, "Sigmoid", [x]).output]).output]


def decompose_swiglu(body: Graph, node: Node, ins: list) -> list:
    # gate * sigmoid(gate) * up
    gate, up = ins
    silu = build(body, "Mul", [gate, build(body, "Sigmoid", [gate]).output]).output
    return [build(body, "Mul", [silu, up]).output]


set_decomposition(SILU, decompose_silu, domain=DOMAIN)
set_decomposition(SWIGLU, decompose_swiglu, domain=DOMAIN)
set_traits([SILU], domain=DOMAIN, kind=PatternKind.ELEMENTWISE, flops=flops.per_element(5))
set_traits([SWIGLU], domain=DOMAIN, kind=PatternKind.BROADCAST, flops=flops.per_element(6))
