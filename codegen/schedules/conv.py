"""Rule ``conv``: graphopt's packed conv2d (`kernels.conv2d`, tag ``kernels.tags.CONV2D``): a
register tile of ``reg_n`` output columns by ``bn`` output channels (2 vectors),
accumulated in a local buffer that LLVM keeps in registers; weights load as contiguous
vectors, inputs are broadcast; the epilogue (bias, BatchNorm affine, residual add, ReLU)
is inlined into the write-back; (batch, channel block, row) run in parallel."""

from __future__ import annotations

from ..kernels.tags import CONV2D
from .helpers import (ACC_REGS, PAR_MIN_WORK, extent, generic_rest, inline_epilogue, largest_divisor, loop_work,
                      packed_block, schedule_of)
from .registry import register_rule


@register_rule("conv", order=10)
def conv_rule(func, lanes):
    sch = schedule_of(func)
    found = packed_block(sch, CONV2D, 7)
    if found is None:
        return None
    blk, name, bn, loops = found
    work = loop_work(sch, loops)  # multiply-accumulates
    OW = extent(sch, loops[3])
    vec = max(1, bn // lanes)
    reg_max = max(1, ACC_REGS.get(lanes, 12) // vec)
    reg_n = largest_divisor(OW, reg_max)
    if reg_n < 4 and OW > reg_max:
        reg_n = reg_max  # a partial last tile (predicated) beats a tiny tile
    cw = sch.cache_write(blk, 0, "local")
    # accumulators channel-innermost, so that the vectorized channel block is contiguous
    sch.transform_layout(blk, ("write", 0), lambda a, b, c, d: (a, c, d, b))
    n, oc, oh, ow, ic, kh, kw = sch.get_loops(blk)
    oco, oci = sch.split(oc, [None, bn])
    owo, owi = sch.split(ow, [None, reg_n])
    sch.reorder(n, oco, oh, owo, ic, kh, kw, owi, oci)
    sch.reverse_compute_at(cw, owo, preserve_unit_loops=True)
    inline_epilogue(sch, cw)
    par = sch.fuse(n, oco, oh)
    if work >= PAR_MIN_WORK:
        sch.parallel(par)
    if bn >= 4:
        sch.vectorize(oci)
    sch.unroll(owi)
    # write-back: loops (n, oc, oh, ow) under owo; oc-inner vectorized across a column
    wl = sch.get_loops(cw)[2:]
    if len(wl) == 4:
        wn, woc, woh, wow = wl
        sch.reorder(wn, woh, wow, woc)
        if bn >= 4:
            sch.vectorize(woc)
        sch.unroll(wow)
    sch.decompose_reduction(blk, ic)
    generic_rest(sch, func, lanes, exclude={name})
    return sch.mod["main"]
