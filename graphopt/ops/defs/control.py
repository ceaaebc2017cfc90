"""Control flow: If and Loop. Output types come from the branch/body graphs' outputs."""

from __future__ import annotations

from typing import Optional

from ...ir import AttrKind, Graph
from ...ir.types import DType, TensorType
from ..registry import REQUIRED, AttrSpec, InferContext, PatternKind, register, set_traits
from ._shapes import check_dtype, fmt_shape, tt


def merge_types(ctx: InferContext, a: TensorType, b: TensorType, output: int, what: str) -> TensorType:
    """The type both ``a`` and ``b`` fit: dims that differ become fresh symbols."""
    if a.dtype is not b.dtype:
        raise ctx.fail(f"{what}: dtypes differ ({a.dtype.short} vs {b.dtype.short})")
    if a.shape is None or b.shape is None or len(a.shape) != len(b.shape):
        return tt(a.dtype, None)
    return tt(a.dtype, [x if x == y else ctx.fresh_dim(output, k) for k, (x, y) in enumerate(zip(a.shape, b.shape))])


def _graph(ctx: InferContext, name: str) -> Graph:
    g = ctx.subgraphs.get(name)
    if g is None:
        raise ctx.fail(f"required attribute {name!r} is missing")
    return g


@register("If", ["cond"], ["outputs*"], {"else_branch": AttrSpec(AttrKind.GRAPH, REQUIRED),
                                         "then_branch": AttrSpec(AttrKind.GRAPH, REQUIRED)})
def infer_if(ctx: InferContext):
    check_dtype(ctx, 0, {DType.BOOL})
    c = ctx.shape(0)
    if c is not None and any(isinstance(d, int) and d != 1 for d in c):
        raise ctx.fail(f"If cond must hold one element, got {fmt_shape(c)}")
    then_g, else_g = _graph(ctx, "then_branch"), _graph(ctx, "else_branch")
    if len(then_g.outputs) != len(else_g.outputs):
        raise ctx.fail(f"If branches differ in output count: then {len(then_g.outputs)}, else {len(else_g.outputs)}")
    if len(then_g.outputs) != ctx.num_outputs:
        raise ctx.fail(f"If branches have {len(then_g.outputs)} outputs, the node has {ctx.num_outputs}")
    return [merge_types(ctx, t.type, e.type, i, f"If output {i}")
            for i, (t, e) in enumerate(zip(then_g.outputs, else_g.outputs))]


@register("Loop", ["M?", "cond?", "v_initial*?"], ["v_final_and_scan_outputs*"],
          {"body": AttrSpec(AttrKind.GRAPH, REQUIRED)})
def infer_loop(ctx: InferContext):
    """N loop-carried values (body outputs 1..N, merged with their initial types), then K scan
    outputs: the body's per-iteration type with a fresh leading (trip count) dim."""
    body = _graph(ctx, "body")
    if ctx.has_input(0):
        check_dtype(ctx, 0, {DType.INT64})
    if ctx.has_input(1):
        check_dtype(ctx, 1, {DType.BOOL})
    n = ctx.num_inputs - 2
    if len(body.inputs) != n + 2:
        raise ctx.fail(f"Loop body takes {len(body.inputs)} inputs, expected {n + 2} "
                       f"(iteration number, condition and {n} loop-carried values)")
    k = len(body.outputs) - 1 - n
    if k < 0:
        raise ctx.fail(f"Loop body has {len(body.outputs)} outputs, expected at least {n + 1}")
    if n + k != ctx.num_outputs:
        raise ctx.fail(f"Loop body gives {n} loop-carried and {k} scan outputs, the node has {ctx.num_outputs}")
    if body.outputs[0].type.dtype is not DType.BOOL:
        raise ctx.fail(f"Loop body's first output (the condition) must be bool, got {body.outputs[0].type}")
    outs: list[Optional[TensorType]] = []
    for i in range(n):
        outs.append(merge_types(ctx, ctx.type(2 + i), body.outputs[1 + i].type, i, f"Loop-carried value {i}"))
    for j in range(k):
        t = body.outputs[1 + n + j].type
        idx = n + j
        outs.append(tt(t.dtype, None if t.shape is None else (ctx.fresh_dim(idx, 0),) + tuple(t.shape)))
    return outs


# If and Loop run subgraphs: passes and the lowering treat them as control flow.
set_traits(["If", "Loop"], control_flow=True, kind=PatternKind.OPAQUE)
