"""The 4-bit weight matmul kernel: float32 activations [M, K] times int4/uint4 constant
weights, half a byte a weight, dequantized in registers (weight-only int4, the decode
lever: a step reads half the bytes of int8).

A TE compute that shifts and masks each weight costs several vector operations per weight
and is compute bound well before memory. This hand-written kernel unpacks two nibbles per
byte with one mask and one shift per eight weights and keeps the scales out of the inner
loop, per block of K:

    y[m, n] = sum_b s[n, b] * (sum_{k in b} a[m, k] * u[n, k]) - zs[n, b] * asum[m, b]

where ``u`` is the unsigned nibble (int4 stored as ``q + 8``), ``zs = (z + 8) * s`` (or
``z * s`` for uint4: `pack_nibbles`) and ``asum`` the block's sum of ``a``.

Layout. The weight is packed ``[N/BN, K/2, BN]`` uint8: for a pair of K and ``BN`` columns,
``BN`` bytes, the even k in the low nibble. One task per block of ``BN`` columns runs in
parallel; it walks the rows in tiles of ``MR`` (each weight vector unpacked once per tile;
`tile_shape`)
and K in blocks of the scale: a float sum per block, then the scale and zero term. K and
the block must be even (pairs do not straddle blocks); the lowering keeps the TE form
otherwise.
"""

from __future__ import annotations

import numpy as np

from ...ops.weight_quant import NKWeight
from .dense import pack_columns
from .tags import TAG_KEY

Q4DENSE = "gq4dense"
VL = 8                      # lanes of a float32 vector the kernel is written in (AVX2)
FEW_ROWS = 4                # up to this many rows (decode), the wide column block


def tile_shape(rows: int) -> tuple[int, int]:
    """(BN, MR): columns per task and rows per register tile. A decode step's few rows want
    many independent sums per row (four vectors of columns); more rows share each unpacked
    weight vector among four rows. Both keep the block sums (MR x BN / VL vectors) at 8 of
    AVX2's 16 registers."""
    return (32, 2) if rows <= FEW_ROWS else (16, 4)


def takes(w: NKWeight) -> bool:
    """Whether the kernel takes ``w``: 4-bit, K even and blocks of an even number of K."""
    K = w.q.shape[1]
    return w.bits == 4 and K % 2 == 0 and w.block % 2 == 0


def pack(w: NKWeight, BN: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(packed [NB, K/2, BN] uint8, scale [NB, NBLK, BN], zs [NB, NBLK, BN] float32; zero past N)."""
    N = w.q.shape[0]
    NB = -(-N // BN)
    packed, zs = pack_nibbles(w, BN, NB * BN)

    def blocks(p: np.ndarray) -> np.ndarray:
        out = np.zeros((NB * BN, p.shape[1]), np.float32)
        out[:N] = p
        return np.ascontiguousarray(out.reshape(NB, BN, -1).transpose(0, 2, 1))

    return packed, blocks(w.scale), blocks(zs)


def pack_nibbles(w: NKWeight, bn: int, Np: int) -> tuple[np.ndarray, np.ndarray]:
    """The 4-bit ``w`` as packed [Np / bn, ceil(K / 2), bn] uint8 bytes (two unsigned nibbles
    along K) and the [N, blocks] float32 ``(z + offset) * s`` that the nibbles' offset and
    zero point come to."""
    N, K = w.q.shape
    offset = 8 if w.q.dtype == np.int8 else 0
    u = (w.q.astype(np.int16) + offset).astype(np.uint8)
    if K % 2:
        u = np.concatenate([u, np.zeros((N, 1), np.uint8)], axis=1)
    pairs = (u[:, 0::2] | (u[:, 1::2] << 4)).astype(np.uint8)
    z = offset + (w.zero.astype(np.float64) if w.zero is not None else 0.0)
    zs = (np.broadcast_to(z, w.scale.shape) * w.scale).astype(np.float32)
    return pack_columns(pairs, bn, Np), zs


def q4dense_kernel(M: int, K: int, NB: int, block: int):
    """The PrimFunc ``gq4dense(A, B, S, Z, Y)``: A [M, K] float32, B, S, Z as `pack` gives
    them, Y [M, NB*BN] float32."""
    from tvm.script import tirx as T

    BN, MR = tile_shape(M)
    KP = K // 2
    BP = block // 2
    NBLK = -(-KP // BP)
    NV = BN // VL
    NTILE, TAIL = divmod(M, MR)
    HAS_TAIL = TAIL > 0
    f32v = f"float32x{VL}"

    @T.macro
    def tile(A, B, S, Z, Y, nb, m0, R, bacc, facc, asum):
        for r in T.unroll(R):
            for v in T.unroll(NV):
                facc[r, T.ramp(v * VL, 1, VL)] = T.broadcast(T.float32(0), VL)
        for kb in range(NBLK):
            for r in T.unroll(R):
                asum[r] = T.float32(0)
                for v in T.unroll(NV):
                    bacc[r, T.ramp(v * VL, 1, VL)] = T.broadcast(T.float32(0), VL)
            for kp in range(T.min(BP, KP - kb * BP)):
                p = kb * BP + kp
                for v in T.unroll(NV):
                    byte = T.Bind(T.Cast(f"int32x{VL}", B.vload([nb, p, v * VL], f"uint8x{VL}")))
                    lo = T.Bind(T.Cast(f32v, T.bitwise_and(byte, T.broadcast(T.int32(15), VL))))
                    hi = T.Bind(T.Cast(f32v, T.shift_right(byte, T.broadcast(T.int32(4), VL))))
                    for r in T.unroll(R):
                        bacc[r, T.ramp(v * VL, 1, VL)] = (bacc[r, T.ramp(v * VL, 1, VL)]
                                                          + T.broadcast(A[m0 + r, 2 * p], VL) * lo
                                                          + T.broadcast(A[m0 + r, 2 * p + 1], VL) * hi)
                for r in T.unroll(R):
                    asum[r] = asum[r] + A[m0 + r, 2 * p] + A[m0 + r, 2 * p + 1]
            for r in T.unroll(R):
                for j in T.vectorized(BN):
                    facc[r, j] = facc[r, j] + bacc[r, j] * S[nb, kb, j] - Z[nb, kb, j] * asum[r]
        for r in T.unroll(R):
            for j in T.vectorized(BN):
                Y[m0 + r, nb * BN + j] = facc[r, j]

    @T.prim_func(private=True, s_tir=True)
    def gq4dense(a_h: T.handle, b_h: T.handle, s_h: T.handle, z_h: T.handle, y_h: T.handle):
        T.func_attr({"tirx.noalias": True})
        A = T.match_buffer(a_h, (M, K), "float32")
        B = T.match_buffer(b_h, (NB, KP, BN), "uint8")
        S = T.match_buffer(s_h, (NB, NBLK, BN), "float32")
        Z = T.match_buffer(z_h, (NB, NBLK, BN), "float32")
        Y = T.match_buffer(y_h, (M, NB * BN), "float32")
        for nb in T.parallel(NB):
            with T.sblock(Q4DENSE):
                vnb = T.axis.spatial(NB, nb)
                T.reads(A[0:M, 0:K], B[vnb, 0:KP, 0:BN], S[vnb, 0:NBLK, 0:BN], Z[vnb, 0:NBLK, 0:BN])
                T.writes(Y[0:M, vnb * BN:vnb * BN + BN])
                T.sblock_attr({TAG_KEY: Q4DENSE})
                bacc = T.alloc_buffer((MR, BN), "float32", scope="local")
                facc = T.alloc_buffer((MR, BN), "float32", scope="local")
                asum = T.alloc_buffer((MR,), "float32", scope="local")
                for t in range(NTILE):
                    tile(A, B, S, Z, Y, vnb, t * MR, MR, bacc, facc, asum)
                if HAS_TAIL:
                    tile(A, B, S, Z, Y, vnb, NTILE * MR, TAIL, bacc, facc, asum)

    return gq4dense.with_attr("tirx.is_scheduled", True)


def emit_q4dense(ctx, a, w: NKWeight, name: str, rows: int):
    """``a`` [rows, K] float32 (relax) times the 4-bit ``w`` ([N, K], `takes`): [rows, N]."""
    from tvm import relax

    N, K = w.q.shape
    packed, scale, zs = pack(w, tile_shape(rows)[0])
    NB = packed.shape[0]
    gv = ctx.bb.add_func(q4dense_kernel(rows, K, NB, w.block), Q4DENSE)
    args = [a, ctx.param(packed, name + ".qweight4"), ctx.param(scale, name + ".scale"),
            ctx.param(zs, name + ".zero_scale")]
    Np = packed.shape[0] * packed.shape[2]
    out = ctx.emit(relax.call_tir(gv, args, relax.TensorType([rows, Np], "float32")))
    if Np != N:
        out = ctx.emit(relax.op.strided_slice(out, axes=[1], begin=[0], end=[N]))
    return out
