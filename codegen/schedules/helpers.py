"""What the schedule rules share: TVM's "does not apply" exceptions, loop and block
queries, finding graphopt's kernels by tag, and the generic parallelize-and-vectorize
step every rule ends with for the blocks it leaves."""

from __future__ import annotations

from typing import Optional

from ..kernels.tags import TAG_KEY

ACC_REGS = {16: 24, 8: 12, 4: 12}  # accumulator vector registers by float32 lanes
PAR_MIN = 2048  # do not parallelize loops nests smaller than this many iterations
# ... nor kernels of fewer multiply-accumulates (or window elements) than this: waking the
# thread pool costs more than such a kernel gains from it (a few microseconds; the shipped
# tiny CNN's first conv, 55k MACs, ran 3x slower in parallel on 2 cores).
PAR_MIN_WORK = PAR_MIN * 64
# ... nor an elementwise or injective block of fewer iterations than this (a copy of 16k
# floats takes about as long as waking the pool: the tiny CNN's 2.6k-element pad block ran
# in parallel before, doubling that model's call time at 2 threads).
PAR_MIN_ELEMENTS = PAR_MIN * 8


def loop_work(sch, loops, unknown: int = 64) -> int:
    """The product of ``loops``' extents (an unknown extent counts as ``unknown``)."""
    total = 1
    for lp in loops:
        e = extent(sch, lp)
        total *= e if e is not None else unknown
    return total


def tagged_blocks(sch) -> list:
    """(block, tag) for every block annotated as a graphopt kernel (`kernels.tags`); a
    scheduled reduction has two (its init block keeps the annotation)."""
    found = []

    def visit(parent):
        for b in sch.get_child_blocks(parent):
            ann = sch.get(b).annotations
            if TAG_KEY in ann:
                found.append((b, str(ann[TAG_KEY])))
            visit(b)

    visit(sch.get_sblock("root"))
    return found


def tagged_block(sch, tag: str):
    """The one block annotated as graphopt kernel ``tag`` (`kernels.tags`), or None."""
    found = [b for b, t in tagged_blocks(sch) if t == tag]
    return found[0] if len(found) == 1 else None


def packed_block(sch, tag: str, rank: int):
    """(block, its name, its output-channel block, its loops) of graphopt's packed kernel
    ``tag`` when the function holds one with ``rank`` loops of known extent; else None."""
    from ..kernels.tags import BLOCK_KEY

    blk = tagged_block(sch, tag)
    if blk is None:
        return None
    loops = sch.get_loops(blk)
    if len(loops) != rank or any(extent(sch, lp) is None for lp in loops):
        return None
    return blk, sch.get(blk).name_hint, int(sch.get(blk).annotations[BLOCK_KEY]), loops


def cannot_schedule():
    """TVM's ways of saying a schedule primitive does not apply to this function (a
    ScheduleError, or one of its own checks); anything else a rule raises is a bug."""
    import tvm
    from tvm.s_tir import ScheduleError

    return (ScheduleError, tvm.error.InternalError)


def schedule_of(func):
    from tvm import s_tir

    return s_tir.Schedule(func)


def extent(sch, loop) -> Optional[int]:
    e = sch.get(loop).extent
    return int(e.value) if hasattr(e, "value") else None


def largest_divisor(n: int, limit: int) -> int:
    for d in range(min(n, limit), 0, -1):
        if n % d == 0:
            return d
    return 1


def inline_epilogue(sch, block) -> None:
    """Inline the elementwise consumers of ``block`` (a complete block) into it, one after
    the other, while each has exactly one consumer-producer link."""
    for _ in range(16):
        consumers = sch.get_consumers(block)
        if len(consumers) != 1:
            return
        try:
            sch.reverse_compute_inline(consumers[0])
        except cannot_schedule():
            return


def region_buffer(region):
    """The buffer of a block read/write region (``BufferRegion`` became ``TensorRegion``
    with a ``source`` in TVM 0.27)."""
    buf = getattr(region, "buffer", None)
    return buf if buf is not None else region.source


def is_output_block(sch, block, func) -> bool:
    """Whether ``block`` writes a buffer that is not allocated inside the function."""
    allocs = list(sch.get(sch.get_sblock("root")).alloc_buffers)
    return not all(any(region_buffer(w).same_as(a) for a in allocs) for w in sch.get(block).writes)


def root_blocks(sch):
    root = sch.get_sblock("root")
    return sch.get_child_blocks(root)


def inline_spatial_producers(sch, func) -> None:
    """Inline elementwise intermediates (padding, casts) into their consumers."""
    for b in list(root_blocks(sch)):
        if is_output_block(sch, b, func):
            continue
        blk = sch.get(b)
        if any(iv.iter_type != 0 for iv in blk.iter_vars):
            continue
        try:
            sch.compute_inline(b)
        except cannot_schedule():
            pass


def generic_rest(sch, func, lanes, exclude: set) -> None:
    for b in list(root_blocks(sch)):
        blk = sch.get(b)
        if blk.name_hint in exclude:
            continue
        try:
            parallel_vectorize(sch, b, lanes)
        except cannot_schedule():
            pass


def parallel_vectorize(sch, b, lanes) -> None:
    loops = sch.get_loops(b)
    if not loops:
        return
    blk = sch.get(b)
    for lp in loops:
        if sch.get(lp).kind != 0:  # already parallel/vectorized/unrolled
            return
    kinds = [iv.iter_type for iv in blk.iter_vars]
    if len(kinds) != len(loops):
        # loops and block iters do not correspond one to one: parallelize the outermost
        # loop only if the block is purely spatial
        if all(k == 0 for k in kinds) and loop_work(sch, loops) >= PAR_MIN:
            sch.parallel(loops[0])
        return
    nsp = 0
    for k in kinds:
        if k != 0:
            break
        nsp += 1
    if nsp == 0:
        return
    total = 1
    for lp in loops:
        e = extent(sch, lp)
        total = total * (e if e is not None else 64)
    spatial = loops[:nsp]
    all_spatial = nsp == len(loops)
    if all_spatial:
        inner = spatial[-1]
        e = extent(sch, inner)
        if e is not None and e >= lanes and e % lanes == 0:
            io, ii = sch.split(inner, [None, lanes])
            sch.vectorize(ii)
            spatial = spatial[:-1] + [io]
        elif e is not None and e >= lanes:
            io, ii = sch.split(inner, [None, lanes])  # predicated tail
            spatial = spatial[:-1] + [io]
            sch.vectorize(ii)
    if total < PAR_MIN_ELEMENTS:
        return
    par = sch.fuse(*spatial) if len(spatial) > 1 else spatial[0]
    sch.parallel(par)
