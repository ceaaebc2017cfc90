"""The packed matmul with constant weights: [M, K] x [K, N], weights packed to [N/bn, K, bn]."""

from __future__ import annotations

import numpy as np

from .common import pick_block, vector_lanes
from .tags import BLOCK_KEY, DENSE, TAG_KEY


# With one or two rows (a decode step) the register tile is one row of ``bn`` columns,
# each vector of it a chain of dependent FMAs across K: a block of 2 vectors keeps two
# chains in flight, too few to hide the FMA latency once the weights are narrower than
# float32 and the kernel stops being bound by memory. Wider blocks give more chains.
FEW_ROWS = 2
WIDE_VECTORS = (8, 4)
MIN_TASKS = 4  # column blocks left for the threads


def column_block(N: int, rows: int = 0) -> tuple[int, int]:
    """(bn, Np): the output-column block and N padded to a multiple of it. When N has no
    block of at least a vector (GPT-2's vocabulary, 50257), N is padded to a multiple of
    ``2 * lanes``: otherwise every output column would be a scalar dot product. ``rows``
    (M, when known and at most FEW_ROWS) asks for a wider block."""
    lanes = vector_lanes()
    if 0 < rows <= FEW_ROWS:
        for v in WIDE_VECTORS:
            b = v * lanes
            if N % b == 0 and N // b >= MIN_TASKS:
                return b, N
    bn = pick_block(N, lanes)
    if bn < lanes and N > 2 * lanes:
        bn = 2 * lanes
        return bn, -(-N // bn) * bn
    return bn, N


def pack_columns(w_nk: np.ndarray, bn: int, Np: int) -> np.ndarray:
    """[N, K] to the packed [Np / bn, K, bn] (padded columns zero), in ``w_nk``'s dtype."""
    N, K = w_nk.shape
    wp = np.zeros((Np // bn, K, bn), w_nk.dtype)
    wp[: N // bn] = w_nk[: N // bn * bn].reshape(N // bn, bn, K).transpose(0, 2, 1)
    if Np != N:
        tail = w_nk[N // bn * bn:]
        wp[N // bn, :, : tail.shape[0]] = tail.T
    return wp


def emit_dense(ctx, a, w_nk: np.ndarray, name: str):
    """``a`` [M, K] times the constant ``w_nk`` [N, K] transposed: [M, N]; padded columns
    (`column_block`) are sliced off the result."""
    from tvm import relax, te

    N, K = w_nk.shape
    bn, Np = column_block(N)
    wp = pack_columns(np.asarray(w_nk, np.float32), bn, Np)
    wv = ctx.param(wp, name + ".weight")

    def compute(data, wk):
        k = te.reduce_axis((0, K), name="k")
        return te.compute((data.shape[0], Np), lambda m, n_: te.sum(data[m, k] * wk[n_ // bn, k, n_ % bn], axis=k),
                          name=DENSE, attrs={BLOCK_KEY: bn, TAG_KEY: DENSE})

    out = ctx.te(compute, a, wv, primfunc_name_hint=DENSE)
    if Np != N:
        out = ctx.emit(relax.op.strided_slice(out, axes=[1], begin=[0], end=[N]))
    return out
