"""Rule ``matmul``: batched matmul of two activations (attention's QK^T and PV), found by
the shape of its block."""

from __future__ import annotations

from .helpers import (ACC_REGS, PAR_MIN_WORK, extent, generic_rest, inline_epilogue, is_output_block, largest_divisor,
                      root_blocks, schedule_of)
from .registry import register_rule


def _matmul_block(sch):
    """The root block computing ``C[..., i, j] += A[..., i, k] * B[..., k, j]`` (relax's
    legalized matmul / batched matmul with non-constant operands), or None."""
    from tvm import tirx

    found = None
    for b in root_blocks(sch):
        blk = sch.get(b)
        kinds = [iv.iter_type for iv in blk.iter_vars]
        if len(kinds) < 3 or kinds[-1] != 2 or any(k != 0 for k in kinds[:-1]):
            continue
        st = blk.body
        if not isinstance(st, tirx.BufferStore) or not isinstance(st.value, tirx.Add):
            continue
        mul = st.value.b
        if isinstance(mul, tirx.Cast):
            mul = mul.value
        if not isinstance(mul, tirx.Mul):
            continue
        a, bb = mul.a, mul.b
        if isinstance(a, tirx.Cast):
            a = a.value
        if isinstance(bb, tirx.Cast):
            bb = bb.value
        if not (hasattr(a, "indices") and hasattr(bb, "indices")) or len(a.indices) < 2 or len(bb.indices) < 2:
            continue  # a vector operand (MatMul of a 1-D input): not this rule's shape
        vi, vj, vk = (iv.var for iv in blk.iter_vars[-3:])
        if not (a.indices[-1].same_as(vk) and a.indices[-2].same_as(vi) and bb.indices[-1].same_as(vj)
                and bb.indices[-2].same_as(vk)):
            continue
        if found is not None:
            return None
        found = b
    return found


@register_rule("matmul", order=30)
def matmul_rule(func, lanes):
    """Batched matmul of two activations (attention's QK^T and PV): the register tile of
    the dense rule (``mr`` rows by a vector block of columns, accumulated in registers),
    batch and row/column tiles in parallel; elementwise producers and consumers inlined."""
    sch = schedule_of(func)
    blk = _matmul_block(sch)
    if blk is None:
        return None
    name = sch.get(blk).name_hint
    for b in list(root_blocks(sch)):  # inline elementwise producers (reshapes, scales)
        if sch.get(b).name_hint == name or is_output_block(sch, b, func):
            continue
        if any(iv.iter_type != 0 for iv in sch.get(b).iter_vars):
            return None
        sch.compute_inline(b)
    blk = sch.get_sblock(name)
    loops = sch.get_loops(blk)
    if len(loops) != len(sch.get(blk).iter_vars):
        return None
    M, N, K = (extent(sch, lp) for lp in loops[-3:])
    if N is None or K is None:
        return None
    bn = next((b for b in (2 * lanes, lanes, 8, 4) if N % b == 0), lanes if N >= lanes else 1)
    vec = max(1, bn // lanes)
    mr_max = max(1, min(8, ACC_REGS.get(lanes, 12) // vec))
    mr = largest_divisor(M, mr_max) if M is not None else 1
    kr = largest_divisor(K, 4)
    cw = sch.cache_write(blk, 0, "local")
    loops = sch.get_loops(blk)
    batch, m, n, k = loops[:-3], loops[-3], loops[-2], loops[-1]
    mo, mi = sch.split(m, [None, mr])
    no, ni = sch.split(n, [None, bn])
    ko, ki = sch.split(k, [None, kr])
    sch.reorder(*batch, mo, no, ko, ki, mi, ni)
    sch.reverse_compute_at(cw, no, preserve_unit_loops=True)
    inline_epilogue(sch, cw)
    work = K * (M or 64) * N
    for lp in batch:
        work *= extent(sch, lp) or 16
    fused = sch.fuse(*batch, mo, no)
    if work >= PAR_MIN_WORK:
        sch.parallel(fused)
    if bn >= 4:
        sch.vectorize(ni)
    if mr > 1:
        sch.unroll(mi)
    if kr > 1:
        sch.unroll(ki)
    wl = sch.get_loops(cw)
    if bn >= 4 and len(wl) >= 2:
        inner = wl[-1]
        if extent(sch, inner) == bn:
            sch.vectorize(inner)
    sch.decompose_reduction(blk, ko)
    generic_rest(sch, func, lanes, exclude={name})
    return sch.mod["main"]
