"""graphopt's default CPU schedules: TVM's CPU pipeline schedules nothing (untuned code
runs 50-80x slower than onnxruntime), so every fused PrimFunc gets one of these rules
before the build. A rule that fails on a function leaves it to the next; the last
(`generic`) only parallelizes and vectorizes, and an unscheduled function is still correct.

Rules, tried in order:

- ``conv``: graphopt's packed conv2d (`kernels.emit_conv2d`, block ``gconv``): a register
  tile of ``reg_n`` output columns by ``bn`` output channels (2 vectors), accumulated in a
  local buffer that LLVM keeps in registers; weights load as contiguous vectors, inputs
  are broadcast; the epilogue (bias, BatchNorm affine, residual add, ReLU) is inlined into
  the write-back; (batch, channel block, row) run in parallel.
- ``dense``: the packed matmul (`kernels.emit_dense`, block ``gdense``), the same idea
  with rows of A in place of output columns.
- ``generic``: inline elementwise producers into their consumers, then for each remaining
  block parallelize its leading spatial loops and vectorize an innermost spatial loop.
"""

from __future__ import annotations

from typing import Optional

ACC_REGS = {16: 24, 8: 12, 4: 12}  # accumulator vector registers by float32 lanes


def schedule_module(mod, target, skip=(), stats=None):
    import tvm
    from tvm import tirx

    from .target import host_cpu

    lanes = host_cpu().vector_lanes
    updates = {}
    for gv, func in mod.functions.items():
        if not isinstance(func, tirx.PrimFunc) or gv.name_hint in skip:
            continue
        if func.attrs is not None and "tirx.is_scheduled" in func.attrs:
            continue
        for rule in (_conv_rule, _dense_rule, _generic_rule):
            try:
                new = rule(func, lanes)
            except Exception:
                new = None
            if new is not None:
                updates[gv] = new.with_attr("tirx.is_scheduled", True)
                if stats is not None:
                    stats.scheduled[rule.__name__.strip("_").replace("_rule", "")] = \
                        stats.scheduled.get(rule.__name__.strip("_").replace("_rule", ""), 0) + 1
                break
    for gv, f in updates.items():
        mod[gv] = f
    if stats is not None:
        stats.kernels = sum(1 for f in mod.functions.values() if isinstance(f, tirx.PrimFunc))
    return mod


# --------------------------------------------------------------------------- helpers
def _sch(func):
    from tvm import s_tir

    return s_tir.Schedule(func)


def _extent(sch, loop) -> Optional[int]:
    e = sch.get(loop).extent
    return int(e.value) if hasattr(e, "value") else None


def _largest_divisor(n: int, limit: int) -> int:
    for d in range(min(n, limit), 0, -1):
        if n % d == 0:
            return d
    return 1


def _block_named(sch, name):
    try:
        return sch.get_sblock(name)
    except Exception:
        return None


def _inline_epilogue(sch, block) -> None:
    """Inline the elementwise consumers of ``block`` (a complete block) into it, one after
    the other, while each has exactly one consumer-producer link."""
    for _ in range(16):
        consumers = sch.get_consumers(block)
        if len(consumers) != 1:
            return
        try:
            sch.reverse_compute_inline(consumers[0])
        except Exception:
            return


def _is_output_block(sch, block, func) -> bool:
    local = {buf.same_as for buf in ()}
    allocs = list(sch.get(sch.get_sblock("root")).alloc_buffers)
    return not all(any(w.buffer.same_as(a) for a in allocs) for w in sch.get(block).writes)


def _root_blocks(sch):
    root = sch.get_sblock("root")
    return sch.get_child_blocks(root)


# --------------------------------------------------------------------------- conv
def _conv_rule(func, lanes):
    sch = _sch(func)
    blk = _block_named(sch, "gconv")
    if blk is None:
        return None
    bn = int(sch.get(blk).annotations["graphopt_bn"])
    loops = sch.get_loops(blk)
    if len(loops) != 7 or any(_extent(sch, lp) is None for lp in loops):
        return None
    OW = _extent(sch, loops[3])
    vec = max(1, bn // lanes)
    reg_max = max(1, ACC_REGS.get(lanes, 12) // vec)
    reg_n = _largest_divisor(OW, reg_max)
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
    _inline_epilogue(sch, cw)
    par = sch.fuse(n, oco, oh)
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
    _generic_rest(sch, func, lanes, exclude={"gconv"})
    return sch.mod["main"]


# --------------------------------------------------------------------------- dense
def _dense_rule(func, lanes):
    sch = _sch(func)
    blk = _block_named(sch, "gdense")
    if blk is None:
        return None
    bn = int(sch.get(blk).annotations["graphopt_bn"])
    loops = sch.get_loops(blk)
    if len(loops) != 3 or any(_extent(sch, lp) is None for lp in loops):
        return None
    M, N, K = (_extent(sch, lp) for lp in loops)
    vec = max(1, bn // lanes)
    mr = _largest_divisor(M, max(1, min(8, ACC_REGS.get(lanes, 12) // vec)))
    kr = _largest_divisor(K, 4)
    cw = sch.cache_write(blk, 0, "local")
    m, n, k = sch.get_loops(blk)
    mo, mi = sch.split(m, [None, mr])
    no, ni = sch.split(n, [None, bn])
    ko, ki = sch.split(k, [None, kr])
    sch.reorder(mo, no, ko, ki, mi, ni)
    sch.reverse_compute_at(cw, no, preserve_unit_loops=True)
    _inline_epilogue(sch, cw)
    sch.parallel(sch.fuse(mo, no))
    if bn >= 4:
        sch.vectorize(ni)
    sch.unroll(mi)
    sch.unroll(ki)
    wl = sch.get_loops(cw)[1:]
    if len(wl) == 2 and bn >= 4:
        sch.vectorize(wl[1])
    sch.decompose_reduction(blk, ko)
    _generic_rest(sch, func, lanes, exclude={"gdense"})
    return sch.mod["main"]


# --------------------------------------------------------------------------- generic
def _generic_rule(func, lanes):
    sch = _sch(func)
    # inline elementwise intermediates into their consumers
    for b in list(_root_blocks(sch)):
        if _is_output_block(sch, b, func):
            continue
        blk = sch.get(b)
        if any(iv.iter_type != 0 for iv in blk.iter_vars):
            continue
        try:
            sch.compute_inline(b)
        except Exception:
            pass
    _generic_rest(sch, func, lanes, exclude=set())
    return sch.mod["main"]


def _generic_rest(sch, func, lanes, exclude: set) -> None:
    for b in list(_root_blocks(sch)):
        blk = sch.get(b)
        if blk.name_hint in exclude:
            continue
        try:
            _parallel_vectorize(sch, b, lanes)
        except Exception:
            pass


_PAR_MIN = 2048  # do not parallelize loops nests smaller than this many iterations


def _parallel_vectorize(sch, b, lanes) -> None:
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
        if all(k == 0 for k in kinds):
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
        e = _extent(sch, lp)
        total = total * (e if e is not None else 64)
    spatial = loops[:nsp]
    all_spatial = nsp == len(loops)
    if all_spatial:
        inner = spatial[-1]
        e = _extent(sch, inner)
        if e is not None and e >= lanes and e % lanes == 0:
            io, ii = sch.split(inner, [None, lanes])
            sch.vectorize(ii)
            spatial = spatial[:-1] + [io]
        elif e is not None and e >= lanes:
            io, ii = sch.split(inner, [None, lanes])  # predicated tail
            spatial = spatial[:-1] + [io]
            sch.vectorize(ii)
    if total < _PAR_MIN:
        return
    par = sch.fuse(*spatial) if len(spatial) > 1 else spatial[0]
    sch.parallel(par)
