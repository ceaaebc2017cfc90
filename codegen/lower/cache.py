"""graphopt.CacheWrite: the key/value cache's update.

- ``inplace=1`` on the CPU: a TIR kernel called with ``call_tir_inplace`` writes the T new
  rows into the cache input's own buffer, which the output then is (the step's cost: T rows,
  not the cache). The op's contract (a graph input read by nothing else) is checked here
  again, since writing a buffer something else reads would be a wrong answer. Positions
  outside the cache are not written (graphopt.llm never passes one: generate checks
  max_length first).
- otherwise, and on other targets: the decomposition's relax ops (axis to the front,
  scatter_nd, back), a new tensor.
"""

from __future__ import annotations

import functools

from ...ops import attr_value
from ...ops.defs.cache import writable
from .helpers import dtype_of, rx
from .registry import register_lowering


@register_lowering("CacheWrite", domain="graphopt")
def _cache_write(ctx, n):
    cache, pos, new = n.inputs
    axis = int(attr_value(n, "axis"))
    if attr_value(n, "inplace") and ctx.target_kind == "cpu" and cache.type.rank == 4 and axis == 2:
        if not writable(cache):
            raise ctx.fail(f"inplace=1 writes %{cache.name}, which is not a graph input read only here")
        R = rx()
        gv = ctx.bb.add_func(_write_kernel(dtype_of(cache)), f"cache_write_{dtype_of(cache)}")
        return ctx.emit(R.call_tir_inplace(gv, [ctx.get(cache), ctx.get(pos), ctx.get(new)], 0, ctx.sinfo(cache)))
    return _scatter(ctx, cache, pos, new, axis)


def _scatter(ctx, cache, pos, new, axis: int):
    R = rx()
    rank = cache.type.rank
    perm = [axis] + [i for i in range(rank) if i != axis]
    inv = [perm.index(i) for i in range(rank)]
    c = ctx.emit(R.op.permute_dims(ctx.get(cache), perm))
    u = ctx.emit(R.op.permute_dims(ctx.get(new), perm))
    idx = ctx.emit(R.op.expand_dims(ctx.get(pos), [-1]))
    return ctx.emit(R.op.permute_dims(ctx.emit(R.op.scatter_nd(c, idx, u, "update")), inv))


@functools.lru_cache(maxsize=None)
def _write_kernel(dt: str):
    from tvm.script import tirx as T

    @T.prim_func(private=True, s_tir=True)
    def cache_write(c_h: T.handle, p_h: T.handle, n_h: T.handle):
        T.func_attr({"tirx.noalias": True})
        B = T.int64()
        H = T.int64()
        L = T.int64()
        D = T.int64()
        S = T.int64()
        C = T.match_buffer(c_h, (B, H, L, D), dt)
        P = T.match_buffer(p_h, (S,), "int64")
        N = T.match_buffer(n_h, (B, H, S, D), dt)
        for b, h, s, d in T.grid(B, H, S, D):
            with T.sblock("cache_write"):
                vb, vh, vs, vd = T.axis.remap("SSSS", [b, h, s, d])
                T.reads(P[vs], N[vb, vh, vs, vd])
                T.writes(C[vb, vh, 0:L, vd])
                if P[vs] >= T.int64(0) and P[vs] < L:
                    C[vb, vh, P[vs], vd] = N[vb, vh, vs, vd]

    return cache_write
