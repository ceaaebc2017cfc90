"""The packed matmul with constant weights: [M, K] x [K, N], weights packed to [N/bn, K, bn]."""

from __future__ import annotations

import numpy as np

from .common import pick_block, vector_lanes
from .tags import BLOCK_KEY, DENSE, TAG_KEY


def emit_dense(ctx, a, w_nk: np.ndarray, name: str):
    """``a`` [M, K] times the constant ``w_nk`` [N, K] transposed: [M, N].

    When N has no block of at least a vector (GPT-2's vocabulary, 50257), the weights are
    padded with zero rows to a multiple of ``2 * lanes`` and the padded columns sliced off
    the result: otherwise every output column would be a scalar dot product."""
    from tvm import relax, te

    N, K = w_nk.shape
    lanes = vector_lanes()
    bn = pick_block(N, lanes)
    Np = N
    if bn < lanes and N > 2 * lanes:
        bn = 2 * lanes
        Np = -(-N // bn) * bn
    wp = np.zeros((Np // bn, K, bn), np.float32)
    wp.reshape(Np // bn, K, bn)[: N // bn] = w_nk[: N // bn * bn].reshape(N // bn, bn, K).transpose(0, 2, 1)
    if Np != N:
        tail = w_nk[N // bn * bn:]
        wp[N // bn, :, : tail.shape[0]] = tail.T
    wv = ctx.param(wp, name + ".weight")

    def compute(data, wk):
        k = te.reduce_axis((0, K), name="k")
        return te.compute((data.shape[0], Np), lambda m, n_: te.sum(data[m, k] * wk[n_ // bn, k, n_ % bn], axis=k),
                          name=DENSE, attrs={BLOCK_KEY: bn, TAG_KEY: DENSE})

    out = ctx.te(compute, a, wv, primfunc_name_hint=DENSE)
    if Np != N:
        out = ctx.emit(relax.op.strided_slice(out, axes=[1], begin=[0], end=[N]))
    return out
