"""Rule ``window``: pooling-like reductions over a small strided window."""

from __future__ import annotations

from .helpers import (PAR_MIN_WORK, extent, generic_rest, largest_divisor, loop_work, region_buffer, root_blocks,
                      schedule_of)
from .registry import register_rule


@register_rule("window", order=40)
def window_rule(func, lanes):
    """Pooling-like reductions (a small window per output element): the window loops go
    outside the innermost output dim, which is vectorized; outer loops run in parallel.
    The generic rule would leave the window innermost and the whole kernel scalar."""
    sch = schedule_of(func)
    # Producers (padding) stay materialized: inlined, each window element becomes a
    # bounds check that keeps the vectorized loop scalar (3-7x slower on padded pools).
    roots = list(root_blocks(sch))
    reds = [b for b in roots if any(iv.iter_type != 0 for iv in sch.get(b).iter_vars)]
    if len(reds) != 1:
        return None
    b = reds[0]
    loops = sch.get_loops(b)
    work = loop_work(sch, loops)  # outputs times window elements
    kinds = [iv.iter_type for iv in sch.get(b).iter_vars]
    nsp = kinds.count(0)
    if len(kinds) != len(loops) or kinds != [0] * nsp + [2] * (len(kinds) - nsp) or nsp == 0 or nsp == len(kinds):
        return None
    window = 1
    for lp in loops[nsp:]:
        e = extent(sch, lp)
        if e is None:
            return None
        window *= e
    e = extent(sch, loops[nsp - 1])
    if window > 64 or e is None or e < 4 or not _last_dim_follows(sch.get(b), nsp - 1):
        return None
    # Strided windows only: measured on the light models' pools, stride-2 ones run 1.4-3x
    # faster this way, stride-1 ones (inception's 3x3 on 14x14) up to 4x slower.
    blk = sch.get(b)
    w_in, w_out = region_buffer(blk.reads[0]).shape[-1], region_buffer(blk.writes[0]).shape[-1]
    if not (hasattr(w_in, "value") and hasattr(w_out, "value")) or int(w_in.value) < 1.5 * int(w_out.value):
        return None
    # A vector that divides the row exactly (55 -> 11 lanes) runs 2-3x faster than a full
    # one with a predicated tail, whose strided loads LLVM then scalarizes.
    d = largest_divisor(e, lanes)
    wo, wi = sch.split(loops[nsp - 1], [None, d if 2 * d >= min(e, lanes) else lanes])
    sch.vectorize(wi)  # the window loops stay inside; the vectorizer keeps them serial
    outer = list(loops[:nsp - 1]) + [wo]
    par = sch.fuse(*outer) if len(outer) > 1 else outer[0]
    if work >= PAR_MIN_WORK:
        sch.parallel(par)
    generic_rest(sch, func, lanes, exclude={sch.get(b).name_hint})
    return sch.mod["main"]


def _last_dim_follows(blk, k: int) -> bool:
    """Whether every read's last index moves with block var ``k`` (pooling over W), so
    that vectorizing it reads along rows; a global pool reduces along rows instead."""
    from tvm import tirx

    var = blk.iter_vars[k].var
    return all(any(v.same_as(var) for v in tirx.analysis.undefined_vars(r.region[-1].min)) for r in blk.reads)
