"""Static shape specialization: bind the symbolic dims of the graph's inputs to sizes, in
every value's type (subgraphs included), and re-infer types so that what follows from
them becomes static too.

Options (text, as pipeline specs carry them): ``dims=batch:1;seq:128`` binds symbols by
name; ``shapes=input_ids:1x128`` binds an input's whole shape (each of its symbols gets
the size at its axis; a static dim must match). A binding that contradicts the model is
a `ShapeBindingError` naming the input, the dim or the node.

The pass folds nothing itself: once the types are static, fold-constants turns ``Shape``
/ ``Size`` of them into constants and everything computed from those (Gather, Concat,
Range, the targets of Reshape, Expand, Slice, Tile, masks of a known length) folds with
them. The binding is one rewrite application (``specialize-shapes.bind``).

A dim named in ``dims`` that no graph input has is skipped (and said so under
``--explain``): after a first run the bound symbols are gone, and a second run must change
nothing. ``graphopt opt/compile --dim`` and ``optimize(dims=...)`` check the names against
the model before any pass runs, so a typo there is an error.
"""

from __future__ import annotations

from dataclasses import dataclass

from graphopt.errors import ShapeBindingError
from graphopt.ir import Graph
from graphopt.ir.binding import input_dims, parse_dims_option, parse_shapes_option, resolve_binding
from graphopt.ir.symbols import bind_dims
from graphopt.ops import InferError, refine_types
from graphopt.pipeline.base import Pass, PassContext, register_pass

RULE = "specialize-shapes.bind"


@register_pass
@dataclass
class SpecializeShapes(Pass):
    name = "specialize-shapes"
    summary = "bind symbolic input dims to sizes (dims=seq:128, shapes=ids:1x128) and re-infer types so they become static"

    dims: str = ""     # "batch:1;seq:128"
    shapes: str = ""   # "input_ids:1x128;attention_mask:1x128"

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        dims, shapes = parse_dims_option(self.dims), parse_shapes_option(self.shapes)
        if not dims and not shapes:
            return False
        binding = resolve_binding(graph, shapes, dims, ignore_unknown_dims=True)
        present = set(input_dims(graph))
        for sym in dims:
            if sym not in present:
                ctx.explain_failed(RULE, f"dim {sym}", "no graph input has this symbolic dim (bound before, or not "
                                                       "in the model)")
        if not binding:
            return False
        text = ", ".join(f"{k}={v}" for k, v in binding.items())
        if not ctx.allow(RULE, (), lambda: f"bind {text}"):
            ctx.explain_failed(RULE, "graph", "the bisect limit was reached")
            return False
        changed = bind_dims(graph, binding)
        try:
            changed |= refine_types(graph)
        except InferError as e:
            raise ShapeBindingError(f"binding {text} contradicts the model: {e}") from None
        ctx.explain_applied(RULE, f"bind {text}")
        return changed
