"""graphopt's CPU attention kernel: softmax(Q K^T * scale + mask [+ causal]) V for float32
with static shapes, as one hand-scheduled TIR PrimFunc that never materializes the S x L
scores (flash attention's online softmax).

Layout of the work. The rep = Hq / Hkv query heads that share a K/V head are one group of
``R = S * rep`` query rows, ordered row ``r = i * rep + g`` (query position i, head g of the
group), so that a block of rows holds consecutive positions (the causal bound of a block is
its last row's) and a decode step (S = 1) puts all rep heads of a group in one block: each
K/V head is then read once per block of rows, never once per query head, and never copied.
One task per (batch, K/V head, block of ``BQ`` rows) runs in parallel. A task walks the key
blocks of ``BK`` keys (causal: only those at or below the diagonal of its last row), keeping
per row the running max ``m``, the running sum ``l`` and the accumulator ``acc[Dv]``. Two
variants of the inner steps, the same arithmetic:

- "rows" (prefill; `pick_variant`: at least a vector of rows): Q's block is transposed once
  per task into ``Qt[D, BQ]`` (scaled), so the scores of ``KU`` keys are BQ-wide vector FMAs
  over D (K's element broadcast, KU * BQ / lanes accumulators in registers); max, exp and
  sum run down the key block as vector ops over the rows: no horizontal reductions, no
  transposed copy of K.
- "keys" (decode: fewer rows than a vector): the key block is transposed into ``Kt[D, BK]``
  (L1-resident) and each row's scores are BK-wide vector FMAs over D.

In both, mask, causal bound and key tail become -inf by a vector select (the additive mask
read in place through its broadcast dims: index 0 there, never expanded); ``p = exp(s -
m_new)`` is vectorized (fast_math's polynomial exp, a few float32 ulps); ``acc = acc *
exp(m_old - m_new) + p V`` is Dv-wide vector FMAs over the row's visible keys.

A row that sees no key (all -inf: a fully masked row, or a causal row with S > L) keeps
m = -inf; the max it uses for exp is then 0 (not -inf, which would give exp(nan)) and its
output is NaN as softmax's 0/0 is, or 0 with ``zero_nan_rows`` (which also zeroes a row a
NaN input made NaN, as the op's IsNaN/Where does).

The function is scheduled as written (``tirx.is_scheduled``; fast math applied here), so
the schedule rules leave it alone; its block carries the tag ``kernels.tags.ATTENTION`` and
the PrimFunc is named after it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from .tags import ATTENTION, TAG_KEY

# Key block and rows per task: the K/V block is read from memory once per BQ rows (then
# from L1: 2 * 32 * 64 * 4 bytes for D = Dv = 64), and 32 rows or keys are 4 (AVX2) or 2
# (AVX-512) vectors. Measured at S = L = 2048 causal (2 cores, AVX2, a loaded machine): the
# rows variant's BQ 16/32/64 and BK 32/64 within 15% of each other; the keys variant's
# BK 16 1.6x slower than 32.
BK = 32
BQ = 32


@dataclass(frozen=True)
class AttentionShape:
    """The static problem one kernel is built for."""

    b: int
    hq: int
    hkv: int
    s: int
    length: int
    d: int
    dv: int
    scale: float
    causal: bool
    zero_nan_rows: bool
    mask_shape: Optional[tuple] = None   # the mask's shape padded to 4 dims, or None

    @property
    def rep(self) -> int:
        return self.hq // self.hkv


def pick_variant(p: AttentionShape, lanes: int) -> str:
    """"rows" (vectors over query rows) when a K/V head has at least a vector of query
    rows, else "keys" (vectors over keys: decode steps)."""
    return "rows" if p.rep * p.s >= lanes else "keys"


def attention_kernel(p: AttentionShape, lanes: int, variant: Optional[str] = None, bq: int = BQ, bk: int = BK):
    """The PrimFunc ``gattn(Q, K, V[, M], Y)`` for problem ``p`` (already fast-math'd), for
    a CPU of ``lanes`` float32 lanes; ``variant`` "rows" or "keys" (None: `pick_variant`)."""
    from tvm import tirx
    from tvm.script import tirx as T

    from ..schedules.fast_math import fast_math

    B, HQ, HKV, S, L, D, DV = p.b, p.hq, p.hkv, p.s, p.length, p.d, p.dv
    REP = p.rep
    R = REP * S
    BQ_ = min(bq, R)
    BK_ = bk
    NQB = -(-R // BQ_)
    NKB = -(-L // BK_)
    NT = B * HKV * NQB
    OFF = L - S                     # query i sees keys j <= i + OFF (bottom-right causal)
    CAUSAL = bool(p.causal)
    ZERO = bool(p.zero_nan_rows)
    HAS_MASK = p.mask_shape is not None
    MSHAPE = tuple(p.mask_shape) if HAS_MASK else (1, 1, 1, 1)
    # broadcast dims of the mask read index 0: multiply the index by 0 there
    MB, MH, MI, MJ = (int(x != 1) for x in MSHAPE)
    KTAIL = L % BK_ != 0
    RTAIL = R % BQ_ != 0
    SCALE = float(p.scale)
    NINF = -math.inf
    LANES = lanes
    variant = variant or pick_variant(p, lanes)
    if variant not in ("rows", "keys"):
        raise ValueError(f"attention_kernel: unknown variant {variant!r}")
    ROWS = variant == "rows"
    f32 = "float32"

    def score(x, M, bb, h, i, j):
        """The masked score of row (bb, h, i) and key j: -inf past the key tail and the
        causal bound, plus the mask read through its broadcast dims."""
        ok = None
        if KTAIL:
            ok = j < L
        if CAUSAL:
            c = j <= i + OFF
            ok = c if ok is None else tirx.all(ok, c)
        if M is not None:
            x = x + M[bb * MB, h * MH, i * MI, (tirx.min(j, L - 1) if KTAIL else j) * MJ]
        return x if ok is None else tirx.Select(ok, x, tirx.const(NINF, f32))

    def whole(*bufs):
        return [b[tuple(slice(0, n) for n in b.shape)] for b in bufs if b is not None]

    @T.macro
    def store(Y, acc, mrow, lrow, bb, hk, r0, nr):
        for rr in range(nr):
            inv = T.Bind(T.float32(1) / lrow[rr])
            for dd in T.vectorized(DV):
                if ZERO:
                    Y[bb, hk * REP + (r0 + rr) % REP, (r0 + rr) // REP, dd] = T.Select(
                        mrow[rr] == T.float32(NINF) or T.isnan(acc[rr, dd] * inv),
                        T.float32(0), acc[rr, dd] * inv)
                else:
                    Y[bb, hk * REP + (r0 + rr) % REP, (r0 + rr) // REP, dd] = T.Select(
                        mrow[rr] == T.float32(NINF), T.float32(math.nan), acc[rr, dd] * inv)

    @T.macro
    def body_keys(Q, K, V, M, Y):
        for t in T.parallel(NT):
            with T.sblock(ATTENTION):
                vt = T.axis.spatial(NT, t)
                T.reads(whole(Q, K, V, M))
                T.writes(whole(Y))
                T.sblock_attr({TAG_KEY: ATTENTION})
                qs = T.alloc_buffer((BQ_, D), f32)
                kt = T.alloc_buffer((D, BK_), f32)
                acc = T.alloc_buffer((BQ_, DV), f32)
                mrow = T.alloc_buffer((BQ_,), f32)
                lrow = T.alloc_buffer((BQ_,), f32)
                sc = T.alloc_buffer((BK_,), f32, scope="local")
                accr = T.alloc_buffer((DV,), f32, scope="local")
                red = T.alloc_buffer((1,), f32, scope="local")
                bb = T.Bind(vt // (HKV * NQB))
                hk = T.Bind(vt // NQB % HKV)
                r0 = T.Bind(vt % NQB * BQ_)
                nr = T.Bind(T.min(BQ_, R - r0) if RTAIL else T.int32(BQ_))
                for rr in range(nr):
                    for dd in T.vectorized(D):
                        qs[rr, dd] = Q[bb, hk * REP + (r0 + rr) % REP, (r0 + rr) // REP, dd] * T.float32(SCALE)
                    for dd in T.vectorized(DV):
                        acc[rr, dd] = T.float32(0)
                    mrow[rr] = T.float32(NINF)
                    lrow[rr] = T.float32(0)
                # causal: the key blocks up to the block's last row's bound (none when it
                # sees no key)
                nkb = T.Bind((T.max(T.min((r0 + nr - 1) // REP + OFF + 1, L), 0) + (BK_ - 1)) // BK_ if CAUSAL else T.int32(NKB))
                for kb in range(nkb):
                    j0 = T.Bind(kb * BK_)
                    for jj in range(BK_):
                        for dd in range(D):
                            kt[dd, jj] = K[bb, hk, T.min(j0 + jj, L - 1) if KTAIL else j0 + jj, dd]
                    nkv = T.Bind(T.min(BK_, L - j0) if KTAIL else T.int32(BK_))
                    for rr in range(nr):
                        i = T.Bind((r0 + rr) // REP)
                        h = T.Bind(hk * REP + (r0 + rr) % REP)
                        for jj in T.vectorized(BK_):
                            sc[jj] = T.float32(0)
                        for dd in range(D):
                            for jj in T.vectorized(BK_):
                                sc[jj] = sc[jj] + qs[rr, dd] * kt[dd, jj]
                        for jj in T.vectorized(BK_):
                            sc[jj] = score(sc[jj], M, bb, h, i, j0 + jj)
                        red[0] = T.float32(NINF)
                        for jj in range(BK_):
                            red[0] = T.max(red[0], sc[jj])
                        mnew = T.Bind(T.max(mrow[rr], red[0]))
                        msafe = T.Bind(T.Select(mnew == T.float32(NINF), T.float32(0), mnew))
                        alpha = T.Bind(T.exp(mrow[rr] - msafe))
                        for jj in T.vectorized(BK_):
                            sc[jj] = T.exp(sc[jj] - msafe)
                        red[0] = T.float32(0)
                        for jj in range(BK_):
                            red[0] = red[0] + sc[jj]
                        lrow[rr] = lrow[rr] * alpha + red[0]
                        mrow[rr] = mnew
                        for dd in T.vectorized(DV):
                            accr[dd] = acc[rr, dd] * alpha
                        # causal: keys past the row's bound have p = 0; skip them
                        for jj in range(T.max(T.min(nkv, i + OFF + 1 - j0), 0) if CAUSAL else nkv):
                            for dd in T.vectorized(DV):
                                accr[dd] = accr[dd] + sc[jj] * V[bb, hk, j0 + jj, dd]
                        for dd in T.vectorized(DV):
                            acc[rr, dd] = accr[dd]
                store(Y, acc, mrow, lrow, bb, hk, r0, nr)

    # rows variant: unroll over keys so that KU * (BQ_ / lanes) accumulators hide the FMA
    # latency (about 8 vector registers)
    KU = max(1, min(8 // max(1, -(-BQ_ // LANES)), 4))
    while BK_ % KU:
        KU -= 1

    @T.macro
    def body_rows(Q, K, V, M, Y):
        for t in T.parallel(NT):
            with T.sblock(ATTENTION):
                vt = T.axis.spatial(NT, t)
                T.reads(whole(Q, K, V, M))
                T.writes(whole(Y))
                T.sblock_attr({TAG_KEY: ATTENTION})
                qt = T.alloc_buffer((D, BQ_), f32)
                st = T.alloc_buffer((BK_, BQ_), f32)
                acc = T.alloc_buffer((BQ_, DV), f32)
                mrow = T.alloc_buffer((BQ_,), f32)
                lrow = T.alloc_buffer((BQ_,), f32)
                msafe = T.alloc_buffer((BQ_,), f32)
                alpha = T.alloc_buffer((BQ_,), f32)
                s2 = T.alloc_buffer((KU, BQ_), f32, scope="local")
                accr = T.alloc_buffer((DV,), f32, scope="local")
                bb = T.Bind(vt // (HKV * NQB))
                hk = T.Bind(vt // NQB % HKV)
                r0 = T.Bind(vt % NQB * BQ_)
                nr = T.Bind(T.min(BQ_, R - r0) if RTAIL else T.int32(BQ_))
                # rows past R (the last block's padding) compute on row R - 1 and are not stored
                for dd in range(D):
                    for rr in T.vectorized(BQ_):
                        qt[dd, rr] = Q[bb, hk * REP + T.min(r0 + rr, R - 1) % REP, T.min(r0 + rr, R - 1) // REP,
                                       dd] * T.float32(SCALE)
                for rr in range(BQ_):
                    for dd in T.vectorized(DV):
                        acc[rr, dd] = T.float32(0)
                for rr in T.vectorized(BQ_):
                    mrow[rr] = T.float32(NINF)
                    lrow[rr] = T.float32(0)
                nkb = T.Bind((T.max(T.min((r0 + nr - 1) // REP + OFF + 1, L), 0) + (BK_ - 1)) // BK_ if CAUSAL
                             else T.int32(NKB))
                for kb in range(nkb):
                    j0 = T.Bind(kb * BK_)
                    for jp in range(BK_ // KU):
                        for u, rr in T.grid(KU, BQ_):
                            s2[u, rr] = T.float32(0)
                        for dd in range(D):
                            for u in T.unroll(KU):
                                for rr in T.vectorized(BQ_):
                                    s2[u, rr] = s2[u, rr] + K[bb, hk, T.min(j0 + jp * KU + u, L - 1) if KTAIL
                                                              else j0 + jp * KU + u, dd] * qt[dd, rr]
                        for u in T.unroll(KU):
                            for rr in T.vectorized(BQ_):
                                st[jp * KU + u, rr] = score(s2[u, rr], M, bb, hk * REP + T.min(r0 + rr, R - 1) % REP,
                                                            T.min(r0 + rr, R - 1) // REP, j0 + jp * KU + u)
                    for rr in T.vectorized(BQ_):
                        msafe[rr] = mrow[rr]
                    for jj in range(BK_):
                        for rr in T.vectorized(BQ_):
                            msafe[rr] = T.max(msafe[rr], st[jj, rr])
                    for rr in T.vectorized(BQ_):
                        alpha[rr] = mrow[rr]
                        mrow[rr] = msafe[rr]
                        msafe[rr] = T.Select(msafe[rr] == T.float32(NINF), T.float32(0), msafe[rr])
                        alpha[rr] = T.exp(alpha[rr] - msafe[rr])
                        lrow[rr] = lrow[rr] * alpha[rr]
                    for jj in range(BK_):
                        for rr in T.vectorized(BQ_):
                            st[jj, rr] = T.exp(st[jj, rr] - msafe[rr])
                            lrow[rr] = lrow[rr] + st[jj, rr]
                    nkv = T.Bind(T.min(BK_, L - j0) if KTAIL else T.int32(BK_))
                    for rr in range(nr):
                        for dd in T.vectorized(DV):
                            accr[dd] = acc[rr, dd] * alpha[rr]
                        # causal: keys past the row's bound have p = 0; skip them
                        for jj in range(T.max(T.min(nkv, (r0 + rr) // REP + OFF + 1 - j0), 0) if CAUSAL else nkv):
                            for dd in T.vectorized(DV):
                                accr[dd] = accr[dd] + st[jj, rr] * V[bb, hk, j0 + jj, dd]
                        for dd in T.vectorized(DV):
                            acc[rr, dd] = accr[dd]
                store(Y, acc, mrow, lrow, bb, hk, r0, nr)

    run = body_rows if ROWS else body_keys

    @T.prim_func(private=True, s_tir=True)
    def gattn_mask(q_h: T.handle, k_h: T.handle, v_h: T.handle, m_h: T.handle, y_h: T.handle):
        T.func_attr({"tirx.noalias": True})
        Q = T.match_buffer(q_h, (B, HQ, S, D), f32)
        K = T.match_buffer(k_h, (B, HKV, L, D), f32)
        V = T.match_buffer(v_h, (B, HKV, L, DV), f32)
        M = T.match_buffer(m_h, MSHAPE, f32)
        Y = T.match_buffer(y_h, (B, HQ, S, DV), f32)
        run(Q, K, V, M, Y)

    @T.prim_func(private=True, s_tir=True)
    def gattn(q_h: T.handle, k_h: T.handle, v_h: T.handle, y_h: T.handle):
        T.func_attr({"tirx.noalias": True})
        Q = T.match_buffer(q_h, (B, HQ, S, D), f32)
        K = T.match_buffer(k_h, (B, HKV, L, D), f32)
        V = T.match_buffer(v_h, (B, HKV, L, DV), f32)
        Y = T.match_buffer(y_h, (B, HQ, S, DV), f32)
        run(Q, K, V, None, Y)

    func = gattn_mask if HAS_MASK else gattn
    return fast_math(func).with_attr("tirx.is_scheduled", True)


def emit_attention(ctx, p: AttentionShape, q, k, v, mask=None):
    """``Y`` [B, Hq, S, Dv] of problem ``p`` through the kernel (``mask`` already 4-D)."""
    from tvm import relax

    from .common import vector_lanes

    gv = ctx.bb.add_func(attention_kernel(p, vector_lanes()), ATTENTION)
    args = [q, k, v] + ([mask] if mask is not None else [])
    return ctx.emit(relax.call_tir(gv, args, relax.TensorType([p.b, p.hq, p.s, p.dv], "float32")))
