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
        try:
            func = _guarded("fast math", gv, fast_math, func)
        except _CANNOT:
            pass  # scalar exp/erf/tanh calls stay: slower, still correct
        for rule in (_conv_rule, _dense_rule, _matmul_rule, _window_rule, _rows_rule, _generic_rule):
            try:
                new = _guarded(f"schedule rule {rule.__name__.strip('_')}", gv, rule, func, lanes)
            except _CANNOT:
                new = None  # the rule does not apply here; the next one is tried
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


def _cannot_schedule():
    """TVM's ways of saying a schedule primitive does not apply to this function (a
    ScheduleError, or one of its own checks); anything else a rule raises is a bug."""
    import tvm
    from tvm.s_tir import ScheduleError

    return (ScheduleError, tvm.error.InternalError)


class _Cannot(Exception):
    """Raised by `_guarded` for a rule TVM says does not apply."""


_CANNOT = _Cannot


def _guarded(what: str, gv, fn, *args):
    """``fn(*args)``; TVM's "cannot schedule this" becomes `_Cannot`, any other exception
    an InternalError naming the rule and kernel (a rule that raises where it should not
    must not silently leave a kernel unscheduled)."""
    from ..errors import InternalError

    try:
        return fn(*args)
    except _cannot_schedule() as e:
        raise _Cannot(str(e)) from e
    except Exception as e:
        raise InternalError(f"{what} on kernel {gv.name_hint!r}", e) from e


# --------------------------------------------------------------------------- fast math
# LLVM has no vector exp/erf/tanh here: ``T.exp``/``T.erf`` become one scalar ``expf``/
# ``erff`` call per element, which also blocks vectorization (softmax, GELU). They are
# replaced by the polynomial approximations of TVM's ``topi.fast_exp``/``fast_erf``/
# ``fast_tanh`` (Cephes/Eigen; within a few float32 ulps), NaN-preserving.
_ERF_ALPHA = (-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06, -5.69250639462346e-05,
              -7.34990630326855e-04, -2.95459980854025e-03, -1.60960333262415e-02)
_ERF_BETA = (-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03, -7.37332916720468e-03,
             -1.42647390514189e-02)
_TANH_ALPHA = (-2.76076847742355e-16, 2.00018790482477e-13, -8.60467152213735e-11, 5.12229709037114e-08,
               1.48572235717979e-05, 6.37261928875436e-04, 4.89352455891786e-03)
_TANH_BETA = (1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03, 4.89352518554385e-03)
_EXP_P = (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1)


def _horner(x, coeffs):
    from tvm import tirx

    acc = tirx.const(coeffs[0], "float32")
    for c in coeffs[1:]:
        acc = acc * x + tirx.const(c, "float32")
    return acc


def _odd_rational(x, clamp, alpha, beta):
    from tvm import tirx

    f = lambda v: tirx.const(v, "float32")  # noqa: E731
    xc = tirx.max(tirx.min(x, f(clamp)), f(-clamp))
    x2 = xc * xc
    return xc * _horner(x2, alpha) / _horner(x2, beta)


def _fast_exp(x):
    from tvm import tirx

    f = lambda v: tirx.const(v, "float32")  # noqa: E731
    xc = tirx.max(tirx.min(x, f(88.3762626647950)), f(-88.3762626647949))
    n = tirx.floor(xc * f(1.44269504088896341) + f(0.5))
    r = xc - n * f(0.6931471805599453)
    y = _horner(r, _EXP_P) * r * r + r + f(1.0)
    ef = tirx.reinterpret("float32", tirx.shift_left(tirx.Cast("int32", n + f(127.0)), tirx.const(23, "int32")))
    return tirx.max(ef * y, x)


def fast_math(func):
    """``func`` with float32 exp/erf/tanh calls replaced by vectorizable polynomials, and
    ``pow(x, 2|3)`` by products (``powf`` is a scalar call too)."""
    import tvm_ffi
    from tvm import tirx
    from tvm.ir.expr import Call

    def cb(c):
        name = getattr(c.op, "name", "")
        if name == "tirx.pow" and len(c.args) == 2:  # x ** 2, x ** 3 (GPT-2's GELU): products
            e = c.args[1]
            v = getattr(e, "value", None)
            if v is not None and float(v) in (2.0, 3.0):
                x = c.args[0]
                return x * x if float(v) == 2.0 else x * x * x
            return c
        if name not in ("tirx.exp", "tirx.erf", "tirx.tanh") or str(getattr(c, "dtype", None) or c.ty) != "float32" or len(c.args) != 1:
            return c
        x = c.args[0]
        if name == "tirx.exp":
            y = _fast_exp(x)
        elif name == "tirx.erf":
            y = _odd_rational(x, 4.0, _ERF_ALPHA, _ERF_BETA)
        else:
            y = _odd_rational(x, 9.0, _TANH_ALPHA, _TANH_BETA)
        return tirx.Select(tirx.isnan(x), x, y)

    return tvm_ffi.structural_map(func, [(Call, cb)])


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
    except _cannot_schedule():
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
        except _cannot_schedule():
            return


def _region_buffer(region):
    """The buffer of a block read/write region (``BufferRegion`` became ``TensorRegion``
    with a ``source`` in TVM 0.27)."""
    buf = getattr(region, "buffer", None)
    return buf if buf is not None else region.source


def _is_output_block(sch, block, func) -> bool:
    """Whether ``block`` writes a buffer that is not allocated inside the function."""
    allocs = list(sch.get(sch.get_sblock("root")).alloc_buffers)
    return not all(any(_region_buffer(w).same_as(a) for a in allocs) for w in sch.get(block).writes)


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
    # column block outer: its packed weights (K x bn) stay in cache across the row blocks
    sch.reorder(no, mo, ko, ki, mi, ni)
    sch.reverse_compute_at(cw, mo, preserve_unit_loops=True)
    _inline_epilogue(sch, cw)
    sch.parallel(sch.fuse(no, mo))
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


# --------------------------------------------------------------------------- matmul
def _matmul_block(sch):
    """The root block computing ``C[..., i, j] += A[..., i, k] * B[..., k, j]`` (relax's
    legalized matmul / batched matmul with non-constant operands), or None."""
    from tvm import tirx

    found = None
    for b in _root_blocks(sch):
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
        if not (hasattr(a, "indices") and hasattr(bb, "indices")):
            continue
        vi, vj, vk = (iv.var for iv in blk.iter_vars[-3:])
        if not (a.indices[-1].same_as(vk) and a.indices[-2].same_as(vi) and bb.indices[-1].same_as(vj)
                and bb.indices[-2].same_as(vk)):
            continue
        if found is not None:
            return None
        found = b
    return found


def _matmul_rule(func, lanes):
    """Batched matmul of two activations (attention's QK^T and PV): the register tile of
    the dense rule (``mr`` rows by a vector block of columns, accumulated in registers),
    batch and row/column tiles in parallel; elementwise producers and consumers inlined."""
    sch = _sch(func)
    blk = _matmul_block(sch)
    if blk is None:
        return None
    name = sch.get(blk).name_hint
    for b in list(_root_blocks(sch)):  # inline elementwise producers (reshapes, scales)
        if sch.get(b).name_hint == name or _is_output_block(sch, b, func):
            continue
        if any(iv.iter_type != 0 for iv in sch.get(b).iter_vars):
            return None
        sch.compute_inline(b)
    blk = sch.get_sblock(name)
    loops = sch.get_loops(blk)
    if len(loops) != len(sch.get(blk).iter_vars):
        return None
    M, N, K = (_extent(sch, lp) for lp in loops[-3:])
    if N is None or K is None:
        return None
    bn = next((b for b in (2 * lanes, lanes, 8, 4) if N % b == 0), lanes if N >= lanes else 1)
    vec = max(1, bn // lanes)
    mr_max = max(1, min(8, ACC_REGS.get(lanes, 12) // vec))
    mr = _largest_divisor(M, mr_max) if M is not None else 1
    kr = _largest_divisor(K, 4)
    cw = sch.cache_write(blk, 0, "local")
    loops = sch.get_loops(blk)
    batch, m, n, k = loops[:-3], loops[-3], loops[-2], loops[-1]
    mo, mi = sch.split(m, [None, mr])
    no, ni = sch.split(n, [None, bn])
    ko, ki = sch.split(k, [None, kr])
    sch.reorder(*batch, mo, no, ko, ki, mi, ni)
    sch.reverse_compute_at(cw, no, preserve_unit_loops=True)
    _inline_epilogue(sch, cw)
    work = K * (M or 64) * N
    for lp in batch:
        work *= _extent(sch, lp) or 16
    fused = sch.fuse(*batch, mo, no)
    if work >= _PAR_MIN * 64:
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
        if _extent(sch, inner) == bn:
            sch.vectorize(inner)
    sch.decompose_reduction(blk, ko)
    _generic_rest(sch, func, lanes, exclude={name})
    return sch.mod["main"]


# --------------------------------------------------------------------------- rows
def _rows_rule(func, lanes):
    """Row-wise reductions (softmax, layer norm, a mean over the last axis) and their
    elementwise epilogues: one parallel loop over the rows of the output, every stage
    computed inside it (the row stays in L1), the row's reductions vectorized through
    ``rfactor``, the elementwise stages vectorized. Stages read by two later stages (the
    exp of a softmax) are computed once per row, not inlined twice."""
    sch = _sch(func)
    blocks = list(_root_blocks(sch))
    if len(blocks) < 2:
        return None
    kinds = [[iv.iter_type for iv in sch.get(b).iter_vars] for b in blocks]
    if not any(2 in k for k in kinds):
        return None
    for k in kinds:  # only spatial blocks and reductions over trailing axes
        if any(x not in (0, 2) for x in k) or (2 in k and any(x == 0 for x in k[k.index(2):])):
            return None
    outs = [b for b in blocks if _is_output_block(sch, b, func)]
    if len(outs) != 1 or 2 in [iv.iter_type for iv in sch.get(outs[0]).iter_vars]:
        return None
    out_name = sch.get(outs[0]).name_hint
    # inline single-consumer elementwise stages (repeat: inlining frees other stages)
    changed = True
    while changed:
        changed = False
        for b in list(_root_blocks(sch)):
            blk = sch.get(b)
            if blk.name_hint == out_name or any(iv.iter_type != 0 for iv in blk.iter_vars):
                continue
            if len(sch.get_consumers(b)) == 1:
                try:
                    sch.compute_inline(b)
                    changed = True
                except _cannot_schedule():
                    pass
    # reductions over the row as ``lanes`` vector partials (rfactor) before computing
    # every stage inside the row loop
    for b in list(_root_blocks(sch)):
        blk = sch.get(b)
        if not any(iv.iter_type == 2 for iv in blk.iter_vars) or sum(iv.iter_type == 2 for iv in blk.iter_vars) != 1:
            continue
        k = sch.get_loops(b)[-1]
        e = _extent(sch, k)
        if e is not None and e >= 4 * lanes and e % lanes == 0 and len(blk.iter_vars) >= 2:
            try:
                ko, ki = sch.split(k, [None, lanes])
                sch.rfactor(ki, factor_axis=len(blk.iter_vars) - 1)
            except _cannot_schedule():
                return None
    out = sch.get_sblock(out_name)
    oloops = sch.get_loops(out)
    if len(oloops) < 2 or len(oloops) != len(sch.get(out).iter_vars):
        return None
    rows = oloops[:-1]
    row = sch.fuse(*rows) if len(rows) > 1 else rows[0]
    nrows = _extent(sch, row)
    inner_len = _extent(sch, oloops[-1])
    stages = [sch.get(b).name_hint for b in _root_blocks(sch) if sch.get(b).name_hint != out_name]
    for nm in reversed(stages):
        sch.compute_at(sch.get_sblock(nm), row, preserve_unit_loops=True)
    if nrows is None or nrows * (inner_len or 64) >= 8 * _PAR_MIN:
        sch.parallel(row)
    for nm in stages + [out_name]:
        b = sch.get_sblock(nm)
        blk = sch.get(b)
        loops = sch.get_loops(b)
        if len(loops) < 2:
            continue
        inner = loops[-1]
        e = _extent(sch, inner)
        if nm.endswith("_rf"):
            # rf block under the row: (lanes, unit loops..., ko): lanes innermost, vectorized
            lane = next((lp for lp in loops[1:-1] if _extent(sch, lp) == lanes), None)
            if lane is not None:
                ko = loops[-1]
                sch.reorder(ko, lane)
                sch.vectorize(lane)
                try:
                    sch.decompose_reduction(b, ko)
                except _cannot_schedule():
                    pass
            continue
        if any(iv.iter_type == 2 for iv in blk.iter_vars):
            continue
        if e is not None and e >= lanes:
            io, ii = sch.split(inner, [None, lanes])
            sch.vectorize(ii)
    return sch.mod["main"]


# --------------------------------------------------------------------------- generic
def _window_rule(func, lanes):
    """Pooling-like reductions (a small window per output element): the window loops go
    outside the innermost output dim, which is vectorized; outer loops run in parallel.
    The generic rule would leave the window innermost and the whole kernel scalar."""
    sch = _sch(func)
    # Producers (padding) stay materialized: inlined, each window element becomes a
    # bounds check that keeps the vectorized loop scalar (3-7x slower on padded pools).
    roots = list(_root_blocks(sch))
    reds = [b for b in roots if any(iv.iter_type != 0 for iv in sch.get(b).iter_vars)]
    if len(reds) != 1:
        return None
    b = reds[0]
    loops = sch.get_loops(b)
    kinds = [iv.iter_type for iv in sch.get(b).iter_vars]
    nsp = kinds.count(0)
    if len(kinds) != len(loops) or kinds != [0] * nsp + [2] * (len(kinds) - nsp) or nsp == 0 or nsp == len(kinds):
        return None
    window = 1
    for lp in loops[nsp:]:
        e = _extent(sch, lp)
        if e is None:
            return None
        window *= e
    e = _extent(sch, loops[nsp - 1])
    if window > 64 or e is None or e < 4 or not _last_dim_follows(sch.get(b), nsp - 1):
        return None
    # Strided windows only: measured on the light models' pools, stride-2 ones run 1.4-3x
    # faster this way, stride-1 ones (inception's 3x3 on 14x14) up to 4x slower.
    blk = sch.get(b)
    w_in, w_out = _region_buffer(blk.reads[0]).shape[-1], _region_buffer(blk.writes[0]).shape[-1]
    if not (hasattr(w_in, "value") and hasattr(w_out, "value")) or int(w_in.value) < 1.5 * int(w_out.value):
        return None
    # A vector that divides the row exactly (55 -> 11 lanes) runs 2-3x faster than a full
    # one with a predicated tail, whose strided loads LLVM then scalarizes.
    d = _largest_divisor(e, lanes)
    wo, wi = sch.split(loops[nsp - 1], [None, d if 2 * d >= min(e, lanes) else lanes])
    sch.vectorize(wi)  # the window loops stay inside; the vectorizer keeps them serial
    outer = list(loops[:nsp - 1]) + [wo]
    sch.parallel(sch.fuse(*outer) if len(outer) > 1 else outer[0])
    _generic_rest(sch, func, lanes, exclude={sch.get(b).name_hint})
    return sch.mod["main"]


def _last_dim_follows(blk, k: int) -> bool:
    """Whether every read's last index moves with block var ``k`` (pooling over W), so
    that vectorizing it reads along rows; a global pool reduces along rows instead."""
    from tvm import tirx

    var = blk.iter_vars[k].var
    return all(any(v.same_as(var) for v in tirx.analysis.undefined_vars(r.region[-1].min)) for r in blk.reads)


def _inline_spatial_producers(sch, func) -> None:
    """Inline elementwise intermediates (padding, casts) into their consumers."""
    for b in list(_root_blocks(sch)):
        if _is_output_block(sch, b, func):
            continue
        blk = sch.get(b)
        if any(iv.iter_type != 0 for iv in blk.iter_vars):
            continue
        try:
            sch.compute_inline(b)
        except _cannot_schedule():
            pass


def _generic_rule(func, lanes):
    sch = _sch(func)
    _inline_spatial_producers(sch, func)
    _generic_rest(sch, func, lanes, exclude=set())
    return sch.mod["main"]


def _generic_rest(sch, func, lanes, exclude: set) -> None:
    for b in list(_root_blocks(sch)):
        blk = sch.get(b)
        if blk.name_hint in exclude:
            continue
        try:
            _parallel_vectorize(sch, b, lanes)
        except _cannot_schedule():
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
