"""Rule ``rows``: row-wise reductions (softmax, layer norm) and their epilogues, one
parallel loop over rows."""

from __future__ import annotations

from .helpers import PAR_MIN, cannot_schedule, extent, is_output_block, root_blocks, schedule_of
from .registry import register_rule


@register_rule("rows", order=50)
def rows_rule(func, lanes):
    """Row-wise reductions (softmax, layer norm, a mean over the last axis) and their
    elementwise epilogues: one parallel loop over the rows of the output, every stage
    computed inside it (the row stays in L1), the row's reductions vectorized through
    ``rfactor``, the elementwise stages vectorized. Stages read by two later stages (the
    exp of a softmax) are computed once per row, not inlined twice."""
    sch = schedule_of(func)
    blocks = list(root_blocks(sch))
    if len(blocks) < 2:
        return None
    kinds = [[iv.iter_type for iv in sch.get(b).iter_vars] for b in blocks]
    if not any(2 in k for k in kinds):
        return None
    for k in kinds:  # only spatial blocks and reductions over trailing axes
        if any(x not in (0, 2) for x in k) or (2 in k and any(x == 0 for x in k[k.index(2):])):
            return None
    outs = [b for b in blocks if is_output_block(sch, b, func)]
    if len(outs) != 1 or 2 in [iv.iter_type for iv in sch.get(outs[0]).iter_vars]:
        return None
    out_name = sch.get(outs[0]).name_hint
    # inline single-consumer elementwise stages (repeat: inlining frees other stages)
    changed = True
    while changed:
        changed = False
        for b in list(root_blocks(sch)):
            blk = sch.get(b)
            if blk.name_hint == out_name or any(iv.iter_type != 0 for iv in blk.iter_vars):
                continue
            if len(sch.get_consumers(b)) == 1:
                try:
                    sch.compute_inline(b)
                    changed = True
                except cannot_schedule():
                    pass
    # reductions over the row as ``lanes`` vector partials (rfactor) before computing
    # every stage inside the row loop
    for b in list(root_blocks(sch)):
        blk = sch.get(b)
        if not any(iv.iter_type == 2 for iv in blk.iter_vars) or sum(iv.iter_type == 2 for iv in blk.iter_vars) != 1:
            continue
        k = sch.get_loops(b)[-1]
        e = extent(sch, k)
        if e is not None and e >= 4 * lanes and e % lanes == 0 and len(blk.iter_vars) >= 2:
            try:
                ko, ki = sch.split(k, [None, lanes])
                sch.rfactor(ki, factor_axis=len(blk.iter_vars) - 1)
            except cannot_schedule():
                return None
    out = sch.get_sblock(out_name)
    oloops = sch.get_loops(out)
    if len(oloops) < 2 or len(oloops) != len(sch.get(out).iter_vars):
        return None
    rows = oloops[:-1]
    row = sch.fuse(*rows) if len(rows) > 1 else rows[0]
    nrows = extent(sch, row)
    inner_len = extent(sch, oloops[-1])
    stages = [sch.get(b).name_hint for b in root_blocks(sch) if sch.get(b).name_hint != out_name]
    for nm in reversed(stages):
        sch.compute_at(sch.get_sblock(nm), row, preserve_unit_loops=True)
    if nrows is None or nrows * (inner_len or 64) >= 8 * PAR_MIN:
        sch.parallel(row)
    for nm in stages + [out_name]:
        b = sch.get_sblock(nm)
        blk = sch.get(b)
        loops = sch.get_loops(b)
        if len(loops) < 2:
            continue
        inner = loops[-1]
        e = extent(sch, inner)
        if nm.endswith("_rf"):
            # rf block under the row: (lanes, unit loops..., ko): lanes innermost, vectorized
            lane = next((lp for lp in loops[1:-1] if extent(sch, lp) == lanes), None)
            if lane is not None:
                ko = loops[-1]
                sch.reorder(ko, lane)
                sch.vectorize(lane)
                try:
                    sch.decompose_reduction(b, ko)
                except cannot_schedule():
                    pass
            continue
        if any(iv.iter_type == 2 for iv in blk.iter_vars):
            continue
        if e is not None and e >= lanes:
            io, ii = sch.split(inner, [None, lanes])
            sch.vectorize(ii)
    return sch.mod["main"]
