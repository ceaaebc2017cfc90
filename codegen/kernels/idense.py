"""The integer matmul kernel: int8/uint8 activations times int8 constant weights, summed in
int32 (exact), for the quantized activation paths: a MatMul of two DequantizeLinears
(QDQ, the activation's per tensor) and MatMulInteger with a constant B.

x86 has no 8-bit multiply-add that cannot overflow on AVX2: ``vpmaddubsw`` (u8 x s8) sums
two products into int16 with saturation, which is why onnxruntime recommends
``reduce_range`` on CPUs without VNNI. This kernel widens both sides to int16 and uses
``vpmaddwd`` (int16 x int16, two products summed into int32), which cannot saturate for
8-bit data: ``|a| <= 255`` (the activation less its zero point) and ``|w| <= 128``. With
AVX512-VNNI (znver4) ``vpdpwssd`` does the multiply and the add in one instruction.

Layout. The activation is packed per row as int32 pairs ``(a[2k], a[2k+1])`` (int16 each,
the zero point already subtracted: `pack_activation`), so one broadcast feeds a whole
vector. The weight ([N, K], its zero point subtracted at compile time) is packed as
``[N/8, K/2, 8, 2]`` int8: for pair k and 8 columns, 16 bytes, widened to 16 int16 lanes;
``vpmaddwd`` against the broadcast pair gives each column's two products summed. One task
per block of 8 columns runs in parallel; it walks the rows in tiles of ``MR`` (the weight
vector loaded once per tile), and K in blocks of the weight's scale: per block an int32
sum, then ``acc_f += float(sum) * s[n, block]``; the output is ``acc_f * x_scale``. A
weight with one scale per column is one block (split every 16384 pairs so that the int32
sum cannot overflow: 32768 * 255 * 128 < 2**31). ``int32=True`` writes the raw sum instead
(MatMulInteger).

Exactness: the int32 sums are exact; the float output is ``float32(sum) * s * x_scale`` in
that order (one block), so it is what numpy computes in float32 from the exact integers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from .tags import TAG_KEY

IDENSE = "gidense"
IQUANT = "giquant"
BN = 8                      # columns per task: one int32 vector of AVX2
MR = 4                      # rows per register tile
MAX_PAIRS = 16384           # pairs per int32 sum


@dataclass(frozen=True)
class IntWeight:
    """The packed weight and its block scales, from `pack_weight`."""

    packed: np.ndarray      # [NB, KP, 2 * BN] int8
    scale: np.ndarray       # [NB, NBLK, BN] float32 (zeros past N)
    n: int
    k: int
    block_pairs: int        # pairs of K per scale block


def fits(q: np.ndarray, zero: Optional[np.ndarray], block: int) -> bool:
    """Whether the weight [N, K] less its zero point ([N, ceil(K / block)]) is int8 (what
    the packing stores)."""
    if zero is None:
        return q.dtype == np.int8
    d = q.astype(np.int16) - np.repeat(zero.astype(np.int16), block, axis=1)[:, :q.shape[1]]
    return bool(d.min() >= -128 and d.max() <= 127)


def pack_weight(q_nk: np.ndarray, scale: np.ndarray, zero: Optional[np.ndarray], block: int,
                split: bool = True) -> IntWeight:
    """``q_nk`` [N, K] with ``scale``/``zero`` [N, ceil(K / block)] (``block`` K for one per
    column) -> the kernel's layout. ``block`` must be even unless it is K. ``split``: a
    single block is cut every `MAX_PAIRS` pairs (off for the int32 mode, whose sum wraps
    as MatMulInteger's does)."""
    N, K = q_nk.shape
    nblk_src = scale.shape[1]
    if zero is not None:
        zk = np.repeat(zero.astype(np.int16), block, axis=1)[:, :K]
        d = (q_nk.astype(np.int16) - zk).astype(np.int8)
    else:
        d = q_nk.astype(np.int8)
    KP = -(-K // 2)
    NB = -(-N // BN)
    w = np.zeros((NB * BN, 2 * KP), np.int8)
    w[:N, :K] = d
    packed = w.reshape(NB, BN, KP, 2).transpose(0, 2, 1, 3).reshape(NB, KP, 2 * BN)
    if nblk_src == 1:
        bp = min(KP, MAX_PAIRS) if split else KP
        nblk = -(-KP // bp)
        s = np.repeat(scale.astype(np.float32), nblk, axis=1)
    else:
        if block % 2:
            raise ValueError(f"pack_weight: an odd block {block} does not fall on pairs")
        bp, nblk = block // 2, nblk_src
        s = scale.astype(np.float32)
    sp = np.zeros((NB * BN, nblk), np.float32)
    sp[:N] = s
    sp = sp.reshape(NB, BN, nblk).transpose(0, 2, 1)
    return IntWeight(np.ascontiguousarray(packed), np.ascontiguousarray(sp), N, K, bp)


def idense_kernel(M: int, w: IntWeight, vnni: bool, int32: bool = False):
    """The PrimFunc ``gidense(A, B, S, XS, Y)``: A [M, KP] int32 pairs, B and S as
    `pack_weight` gives them, XS [1] float32 (the activation's scale), Y [M, NB*BN] float32
    (int32 with ``int32``: then S and XS are not read, and there is one block)."""
    from tvm.script import tirx as T

    NB, KP, _ = w.packed.shape
    NBLK = w.scale.shape[1]
    BP = w.block_pairs
    NTILE, TAIL = divmod(M, MR)
    HAS_TAIL = TAIL > 0
    YDT = "int32" if int32 else "float32"
    madd = "llvm.x86.avx512.vpdpwssd.256" if vnni else None

    def dot(acc, wv, a):
        """acc + each column's two products (int32x8)."""
        av = T.reinterpret(T.broadcast(a, BN), dtype="int16x16")
        if madd is not None:
            return T.call_llvm_pure_intrin("int32x8", madd, acc, wv, av)
        return acc + T.call_llvm_pure_intrin("int32x8", "llvm.x86.avx2.pmadd.wd", wv, av)

    @T.macro
    def tile(A, B, S, XS, Y, nb, m0, R, acc, facc):
        for r in T.unroll(R):
            for j in T.vectorized(BN):
                facc[r, j] = T.float32(0)
        for kb in range(NBLK):
            for r in T.unroll(R):
                acc[r, T.ramp(0, 1, BN)] = T.broadcast(T.int32(0), BN)
            for kp in range(T.min(BP, KP - kb * BP)):
                wv = T.Bind(T.Cast("int16x16", B.vload([nb, kb * BP + kp, 0], "int8x16")))
                for r in T.unroll(R):
                    acc[r, T.ramp(0, 1, BN)] = dot(acc[r, T.ramp(0, 1, BN)], wv, A[m0 + r, kb * BP + kp])
            if not int32:
                for r in T.unroll(R):
                    for j in T.vectorized(BN):
                        facc[r, j] = facc[r, j] + T.Cast("float32", acc[r, j]) * S[nb, kb, j]
        for r in T.unroll(R):
            for j in T.vectorized(BN):
                if int32:
                    Y[m0 + r, nb * BN + j] = acc[r, j]
                else:
                    Y[m0 + r, nb * BN + j] = facc[r, j] * XS[0]

    @T.prim_func(private=True, s_tir=True)
    def gidense(a_h: T.handle, b_h: T.handle, s_h: T.handle, xs_h: T.handle, y_h: T.handle):
        T.func_attr({"tirx.noalias": True})
        A = T.match_buffer(a_h, (M, KP), "int32")
        B = T.match_buffer(b_h, (NB, KP, 2 * BN), "int8")
        S = T.match_buffer(s_h, (NB, NBLK, BN), "float32")
        XS = T.match_buffer(xs_h, (1,), "float32")
        Y = T.match_buffer(y_h, (M, NB * BN), YDT)
        for nb in T.parallel(NB):
            with T.sblock(IDENSE):
                vnb = T.axis.spatial(NB, nb)
                T.reads(A[0:M, 0:KP], B[vnb, 0:KP, 0:2 * BN], S[vnb, 0:NBLK, 0:BN], XS[0:1])
                T.writes(Y[0:M, vnb * BN:vnb * BN + BN])
                T.sblock_attr({TAG_KEY: IDENSE})
                acc = T.alloc_buffer((MR, BN), "int32", scope="local")
                facc = T.alloc_buffer((MR, BN), "float32", scope="local")
                for t in range(NTILE):
                    tile(A, B, S, XS, Y, vnb, t * MR, MR, acc, facc)
                if HAS_TAIL:
                    tile(A, B, S, XS, Y, vnb, NTILE * MR, TAIL, acc, facc)

    return gidense.with_attr("tirx.is_scheduled", True)


def pack_activation(ctx, x, K: int, zero):
    """``x`` [M, K] int8/uint8 (relax) less its scalar zero point ``zero`` (relax, or None)
    as [M, ceil(K/2)] int32 pairs of int16: the kernel's A."""
    from tvm import relax, te, tirx

    KP = -(-K // 2)

    def compute(xq, z=None):
        def lane(m, k):
            v = xq[m, tirx.min(k, K - 1)].astype("int32")
            if z is not None:
                v = v - z[0].astype("int32")
            return tirx.Select(k < K, v, tirx.const(0, "int32")) if K % 2 else v

        return te.compute((xq.shape[0], KP),
                          lambda m, p: (lane(m, 2 * p) & 0xFFFF) | (lane(m, 2 * p + 1) << 16), name="pack_pairs")

    args = (x,) + ((ctx.emit(relax.op.reshape(zero, [1])),) if zero is not None else ())
    return ctx.te(compute, *args, primfunc_name_hint="pack_pairs")


def emit_idense(ctx, a_pairs, rows: int, w: IntWeight, x_scale, name: str, vnni: bool, int32: bool = False):
    """[rows, N] float32 (int32 with ``int32``) = the packed activation ``a_pairs`` times
    ``w``, times the activation's scalar scale ``x_scale`` (relax; unused with int32)."""
    from tvm import relax

    NB = w.packed.shape[0]
    gv = ctx.bb.add_func(idense_kernel(rows, w, vnni, int32), IDENSE)
    bv = ctx.param(w.packed, name + ".iweight")
    sv = ctx.param(w.scale, name + ".iscale")
    if int32:
        xs = relax.const(np.ones(1, np.float32))
    else:
        xs = ctx.emit(relax.op.reshape(x_scale, [1]))
    dt = "int32" if int32 else "float32"
    out = ctx.emit(relax.call_tir(gv, [a_pairs, bv, sv, xs], relax.TensorType([rows, NB * BN], dt)))
    if NB * BN != w.n:
        out = ctx.emit(relax.op.strided_slice(out, axes=[1], begin=[0], end=[w.n]))
    return out


def dynamic_quantize_kernel(M: int, K: int):
    """The PrimFunc ``gquant(X, A, XS)``: DynamicQuantizeLinear of X (flat [M*K] float32)
    straight into the kernel's pairs A [M, KP] (``q - z``, int16 each) and its scale XS [1]:
    one kernel instead of the range, parameter and quantize kernels (a decode step's
    activation is a few thousand values, so their launches would dominate). The arithmetic
    is DynamicQuantizeLinear's (`codegen.lower.quant.dynamic_quantize`): a division, ties
    to even."""
    from tvm.script import tirx as T

    NT = M * K
    NV, REST = divmod(NT, BN)
    HAS_REST = REST > 0
    KP = -(-K // 2)
    f32 = "float32"

    KV, KREST = divmod(KP, BN)
    HAS_KREST = KREST > 0

    def q(X, par, i):
        """x / s rounded, clipped to [-z, 255 - z]: the quantized value less its zero point."""
        return T.Cast("int32", T.max(T.min(T.round(X[i] / par[0]), par[2]), -par[1]))

    @T.macro
    def pair(X, A, par, m, p):
        A[m, p] = T.bitwise_or(T.bitwise_and(q(X, par, m * K + 2 * p), 0xFFFF),
                               T.shift_left(T.Select(2 * p + 1 < K, q(X, par, T.min(m * K + 2 * p + 1, NT - 1)), 0),
                                            16))

    @T.prim_func(private=True, s_tir=True)
    def gquant(x_h: T.handle, a_h: T.handle, xs_h: T.handle):
        T.func_attr({"tirx.noalias": True})
        X = T.match_buffer(x_h, (NT,), f32)
        A = T.match_buffer(a_h, (M, KP), "int32")
        XS = T.match_buffer(xs_h, (1,), f32)
        with T.sblock(IQUANT):
            T.reads(X[0:NT])
            T.writes(A[0:M, 0:KP], XS[0:1])
            T.sblock_attr({TAG_KEY: IQUANT})
            lo = T.alloc_buffer((BN,), f32, scope="local")
            hi = T.alloc_buffer((BN,), f32, scope="local")
            par = T.alloc_buffer((3,), f32, scope="local")    # scale, zero point, its negation
            for j in T.vectorized(BN):
                lo[j] = T.float32(0)
                hi[j] = T.float32(0)
            for i in range(NV):
                for j in T.vectorized(BN):
                    lo[j] = T.min(lo[j], X[i * BN + j])
                    hi[j] = T.max(hi[j], X[i * BN + j])
            if HAS_REST:
                for j in range(REST):
                    lo[0] = T.min(lo[0], X[NV * BN + j])
                    hi[0] = T.max(hi[0], X[NV * BN + j])
            for j in range(1, BN):
                lo[0] = T.min(lo[0], lo[j])
                hi[0] = T.max(hi[0], hi[j])
            par[0] = T.Select(hi[0] - lo[0] == T.float32(0), T.float32(1), (hi[0] - lo[0]) / T.float32(255))
            par[1] = T.round(T.max(T.min(-lo[0] / par[0], T.float32(255)), T.float32(0)))
            par[2] = T.float32(255) - par[1]
            XS[0] = par[0]
            # vectors of BN pairs (a whole row as one vector makes compile time explode for K in
            # the thousands), then the row's last pairs one at a time
            for m in range(M):
                for pv in range(KV):
                    for j in T.vectorized(BN):
                        pair(X, A, par, m, pv * BN + j)
                if HAS_KREST:
                    for j in range(KREST):
                        pair(X, A, par, m, KV * BN + j)

    return gquant.with_attr("tirx.is_scheduled", True)


def emit_dynamic_pairs(ctx, x, M: int, K: int):
    """(the kernel's pairs [M, KP], the scale [1]) of DynamicQuantizeLinear of ``x``
    ([M, K] float32, relax), through `dynamic_quantize_kernel`."""
    from tvm import relax

    gv = ctx.bb.add_func(dynamic_quantize_kernel(M, K), IQUANT)
    flat = ctx.emit(relax.op.reshape(x, [M * K]))
    out = ctx.emit(relax.call_tir(gv, [flat], [relax.TensorType([M, -(-K // 2)], "int32"),
                                               relax.TensorType([1], "float32")]))
    return ctx.emit(relax.TupleGetItem(out, 0)), ctx.emit(relax.TupleGetItem(out, 1))
