"""graphopt's own domain: ``graphopt.FusedGroup``, a node holding a subgraph (``body``)
that graphopt compiles as one kernel (`graphopt.ir.function.outline` makes one). Its
signature is its body's: one input per body input, of the same type, one output per
body output. Named fused ops (attention, norms, quantized matmuls) register here too,
each with a reference decomposition into standard ONNX ops."""

from __future__ import annotations

from ...ir import AttrKind
from ...ir.function import BODY, DOMAIN, FUSED_GROUP
from ..registry import REQUIRED, AttrSpec, InferContext, PatternKind, register, set_traits
from ._shapes import fmt_shape


@register(FUSED_GROUP, ["inputs*?"], ["outputs*"], {BODY: AttrSpec(AttrKind.GRAPH, REQUIRED)}, domain=DOMAIN)
def infer_fused_group(ctx: InferContext):
    body = ctx.subgraphs.get(BODY)
    if body is None:
        raise ctx.fail(f"required attribute {BODY!r} is missing")
    if len(body.inputs) != ctx.num_inputs:
        raise ctx.fail(f"the body takes {len(body.inputs)} inputs, the node has {ctx.num_inputs}")
    if len(body.outputs) != ctx.num_outputs:
        raise ctx.fail(f"the body has {len(body.outputs)} outputs, the node has {ctx.num_outputs}")
    for i, b in enumerate(body.inputs):
        t = ctx.type(i)
        if t.dtype is not b.type.dtype:
            raise ctx.fail(f"input {i} is {t.dtype.short}, the body's input %{b.name} is {b.type.dtype.short}")
        if t.shape is not None and b.type.shape is not None:
            if len(t.shape) != len(b.type.shape) or any(
                    isinstance(x, int) and isinstance(y, int) and x != y for x, y in zip(t.shape, b.type.shape)):
                raise ctx.fail(f"input {i} has shape {fmt_shape(t.shape)}, the body's input %{b.name} "
                               f"{fmt_shape(b.type.shape)}")
    return [o.type for o in body.outputs]


# A group is a kernel of its own: nothing fuses into it from outside.
set_traits([FUSED_GROUP], domain=DOMAIN, kind=PatternKind.OPAQUE)
