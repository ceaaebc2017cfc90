"""``graphopt.CacheWrite``: write new entries into a key/value cache at given positions,
what an LLM's static cache does each step (torch's ``cache.index_copy(axis, positions, new)``):

    Y = cache;  Y[..., positions[j], ...] = new[..., j, ...]   along ``axis``

- cache [..., L, ...], positions i64 [T] (each in [0, L), distinct), new: cache's shape with
  T at ``axis``; Y has cache's type.
- ``inplace``: 1 makes the lowering write into the cache's buffer itself instead of a copy
  (the update costs T entries, not the cache). Only a graph input read by nothing else may
  be written so; the compiled model then lists it as written (``written_inputs`` in the
  manifest), and its ordinary calls copy it first, so only a caller that hands the buffer
  over (graphopt.llm's decode loop) sees it change.

The reference decomposition is what torch.onnx exports for index_copy: the axis moved to
the front, a ScatterND on it, moved back.
"""

from __future__ import annotations

import numpy as np

from ...ir import DType, Graph, Node, TensorData
from ...ir.function import DOMAIN
from .. import flops
from ..registry import InferContext, PatternKind, attr_value, build, register, set_decomposition, set_traits
from ._shapes import check_dtype, check_rank, fmt_shape, merge_dim, same_dtype, tt
from ._specs import int_attr

CACHE_WRITE = "CacheWrite"


def writable(v) -> bool:
    """Whether a CacheWrite may write ``v``'s buffer in place: a graph input nothing else
    reads."""
    return v.is_graph_input and len(v.uses()) == 1


def _in_place(graph: Graph) -> list[Node]:
    return [n for n in graph.nodes if n.op_type == CACHE_WRITE and n.domain == DOMAIN and attr_value(n, "inplace")]


def written_inputs(graph: Graph) -> set[str]:
    """The names of ``graph``'s inputs that its in-place CacheWrites write."""
    return {n.inputs[0].name for n in _in_place(graph)}


def copy_instead(graph: Graph) -> None:
    """Make ``graph``'s in-place CacheWrites write a copy (inplace=0): for a compile split
    into stages, whose TVM stages read values other stages made."""
    for n in _in_place(graph):
        graph.set_attr(n, "inplace", 0)


@register(CACHE_WRITE, ["cache", "positions", "new"], ["Y"], {"axis": int_attr(2), "inplace": int_attr(0)},
          domain=DOMAIN)
def infer_cache_write(ctx: InferContext):
    dt = same_dtype(ctx, [0, 2])
    check_dtype(ctx, 1, {DType.INT64}, "positions")
    cache, new = ctx.shape(0), ctx.shape(2)
    pos = check_rank(ctx, 1, 1)
    axis = ctx.attr("axis")
    if ctx.attr("inplace") not in (0, 1):
        raise ctx.fail(f"inplace must be 0 or 1, got {ctx.attr('inplace')}")
    if cache is not None:
        if not 0 <= axis < len(cache):
            raise ctx.fail(f"axis {axis} is outside the cache's rank {len(cache)}")
        if new is not None:
            if len(new) != len(cache):
                raise ctx.fail(f"new {fmt_shape(new)} and cache {fmt_shape(cache)} differ in rank")
            for i, (a, b) in enumerate(zip(cache, new)):
                if i != axis:
                    merge_dim(ctx, a, b, f"dim {i} of cache and new")
            if pos is not None:
                merge_dim(ctx, pos[0], new[axis], "the positions' count and new's dim at axis")
    return [tt(dt, cache)]


def decompose_cache_write(body: Graph, node: Node, ins: list) -> list:
    # Transpose(ScatterND(Transpose(cache, p), Unsqueeze(positions, -1), Transpose(new, p)), p^-1)
    cache, pos, new = ins
    rank = len(cache.type.shape)
    axis = int(attr_value(node, "axis"))
    perm = [axis] + [i for i in range(rank) if i != axis]
    inv = [perm.index(i) for i in range(rank)]
    last = body.add_constant(body.fresh_name("last_axis"), TensorData.from_numpy(np.array([-1], np.int64)))
    idx = build(body, "Unsqueeze", [pos, last]).output
    c = build(body, "Transpose", [cache], {"perm": perm}).output
    u = build(body, "Transpose", [new], {"perm": perm}).output
    s = build(body, "ScatterND", [c, idx, u]).output
    return [build(body, "Transpose", [s], {"perm": inv}).output]


set_decomposition(CACHE_WRITE, decompose_cache_write, domain=DOMAIN)
# A scatter: each output element comes from the cache or from new, chosen by the positions.
set_traits([CACHE_WRITE], domain=DOMAIN, kind=PatternKind.OPAQUE, flops=flops.none)
