"""The packed matmul with quantized constant weights (weight-only int8/uint8): [M, K] x the
[K, N] weight that `graphopt.ops.weight_quant.NKWeight` describes, packed like the float
dense (`kernels.dense`: [N/bn, K, bn]) but in its integer dtype, so a decode step reads one
byte a weight. The weight is dequantized in the inner loop, never as a copy.

With one scale per output column and no zero point, the scale leaves the sum:
``C = s[n] * sum_k A[m, k] * q[k, n]``, one multiply per output in the write-back. With
blocks along K (or zero points) each weight is ``(q - z) * s`` of its block, read from the
packed [N/bn, K/block, bn] scale beside it. Both carry the dense tag, so the dense schedule
rule (`schedules.dense`) schedules them: the same register tile, the write-back inlined.

4-bit weights (int4, uint4) are packed two a byte along K, ``u = q + 8`` for int4 (so both
kinds are unsigned nibbles), element ``2j`` in the low nibble of byte ``j``; the inner loop
shifts and masks, and ``w = u * s - (z + 8) * s`` of its block: half a byte a weight read.
With the row count known, K even and even blocks, the hand-written `kernels.q4dense` does
this at a fraction of the instructions; this TE form is the general case.
"""

from __future__ import annotations

import numpy as np

from ...ops.weight_quant import NKWeight
from .dense import column_block, pack_columns
from .q4dense import emit_q4dense, pack_nibbles, takes
from .tags import BLOCK_KEY, DENSE, TAG_KEY


def emit_qdense(ctx, a, w: NKWeight, name: str, rows: int = 0):
    """``a`` [M, K] (float32; ``rows`` is M when known) times the quantized ``w``: [M, N]
    float32."""
    from tvm import relax, te

    N, K = w.q.shape
    bn, Np = column_block(N, rows)
    if w.bits == 4:
        if rows and takes(w):
            return emit_q4dense(ctx, a, w, name, rows)
        return _emit_nibbles(ctx, a, w, name, bn, Np)
    qv = ctx.param(pack_columns(w.q, bn, Np), name + ".qweight")
    per_column = w.scale.shape[1] == 1 and w.zero is None
    if per_column:
        scale = np.zeros(Np, np.float32)
        scale[:N] = w.scale[:, 0]
        sv = ctx.param(scale, name + ".scale")

        def compute(data, q, s):
            k = te.reduce_axis((0, K), name="k")
            acc = te.compute((data.shape[0], Np),
                             lambda m, n_: te.sum(data[m, k] * q[n_ // bn, k, n_ % bn].astype("float32"), axis=k),
                             name=DENSE, attrs={BLOCK_KEY: bn, TAG_KEY: DENSE})
            return te.compute(acc.shape, lambda m, n_: acc[m, n_] * s[n_], name="dequantize_scale")

        out = ctx.te(compute, a, qv, sv, primfunc_name_hint=DENSE)
    else:
        B = w.block
        sp = pack_columns(w.scale, bn, Np)                   # [Np/bn, nb, bn]
        sv = ctx.param(sp, name + ".scale")
        zv = None
        if w.zero is not None:                               # (q - z) * s = q * s - z * s
            zs = w.zero.astype(np.float32) * w.scale
            zv = ctx.param(pack_columns(zs.astype(np.float32), bn, Np), name + ".zero_scale")

        def weight(q, s, z, n_, k):
            v = q[n_ // bn, k, n_ % bn].astype("float32") * s[n_ // bn, k // B, n_ % bn]
            return v - z[n_ // bn, k // B, n_ % bn] if z is not None else v

        def compute(data, q, s, z=None):
            k = te.reduce_axis((0, K), name="k")
            return te.compute((data.shape[0], Np), lambda m, n_: te.sum(data[m, k] * weight(q, s, z, n_, k), axis=k),
                              name=DENSE, attrs={BLOCK_KEY: bn, TAG_KEY: DENSE})

        args = (a, qv, sv) + ((zv,) if zv is not None else ())
        out = ctx.te(compute, *args, primfunc_name_hint=DENSE)
    if Np != N:
        out = ctx.emit(relax.op.strided_slice(out, axes=[1], begin=[0], end=[N]))
    return out


def _emit_nibbles(ctx, a, w: NKWeight, name: str, bn: int, Np: int):
    from tvm import relax, te

    N, K = w.q.shape
    B = w.block
    packed, zs = pack_nibbles(w, bn, Np)
    qv = ctx.param(packed, name + ".qweight4")
    sv = ctx.param(pack_columns(w.scale, bn, Np), name + ".scale")
    zv = ctx.param(pack_columns(zs, bn, Np), name + ".zero_scale")

    def weight(q, s, z, n_, k):
        nib = (q[n_ // bn, k // 2, n_ % bn].astype("int32") >> ((k % 2) * 4)) & 15
        return nib.astype("float32") * s[n_ // bn, k // B, n_ % bn] - z[n_ // bn, k // B, n_ % bn]

    def compute(data, q, s, z):
        k = te.reduce_axis((0, K), name="k")
        return te.compute((data.shape[0], Np), lambda m, n_: te.sum(data[m, k] * weight(q, s, z, n_, k), axis=k),
                          name=DENSE, attrs={BLOCK_KEY: bn, TAG_KEY: DENSE})

    out = ctx.te(compute, a, qv, sv, zv, primfunc_name_hint=DENSE)
    if Np != N:
        out = ctx.emit(relax.op.strided_slice(out, axes=[1], begin=[0], end=[N]))
    return out
