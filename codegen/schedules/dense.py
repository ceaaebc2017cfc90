"""Rule ``dense``: the packed matmul (`kernels.dense`, tag ``kernels.tags.DENSE``), the idea
of the conv rule with rows of A in place of output columns; the column block is outer so
that its packed weights (K x bn) stay in cache across the row blocks."""

from __future__ import annotations

from ..kernels.tags import DENSE
from .helpers import (ACC_REGS, PAR_MIN_WORK, extent, generic_rest, inline_epilogue, largest_divisor, packed_block,
                      schedule_of)
from .registry import register_rule


@register_rule("dense", order=20)
def dense_rule(func, lanes):
    sch = schedule_of(func)
    found = packed_block(sch, DENSE, 3)
    if found is None:
        return None
    blk, name, bn, loops = found
    M, N, K = (extent(sch, lp) for lp in loops)
    vec = max(1, bn // lanes)
    mr = largest_divisor(M, max(1, min(8, ACC_REGS.get(lanes, 12) // vec)))
    kr = largest_divisor(K, 4)
    cw = sch.cache_write(blk, 0, "local")
    m, n, k = sch.get_loops(blk)
    mo, mi = sch.split(m, [None, mr])
    no, ni = sch.split(n, [None, bn])
    ko, ki = sch.split(k, [None, kr])
    # column block outer: its packed weights (K x bn) stay in cache across the row blocks
    sch.reorder(no, mo, ko, ki, mi, ni)
    sch.reverse_compute_at(cw, mo, preserve_unit_loops=True)
    inline_epilogue(sch, cw)
    par = sch.fuse(no, mo)
    if M * N * K >= PAR_MIN_WORK:
        sch.parallel(par)
    if bn >= 4:
        sch.vectorize(ni)
    sch.unroll(mi)
    sch.unroll(ki)
    wl = sch.get_loops(cw)[1:]
    if len(wl) == 2 and bn >= 4:
        sch.vectorize(wl[1])
    sch.decompose_reduction(blk, ko)
    generic_rest(sch, func, lanes, exclude={name})
    return sch.mod["main"]
