"""graphopt's own TE computes for the kernels that dominate CNN run time.

Weights are constants, so they are packed at compile time (numpy) into layouts whose inner
dimension is a block of output channels (``bn``, a multiple of the vector width): the
inner loop of the schedule (`codegen.schedules`) then loads one contiguous vector of
weights per reduction step and broadcasts one input element into it (the classic
register-blocked micro-kernel). Activations stay NCHW, so these kernels mix freely with the
relax ops around them. Block names (``gconv``, ``gdense``) are how the schedules find them.
"""

from __future__ import annotations

import numpy as np

CONV_BLOCK = "gconv"
DENSE_BLOCK = "gdense"


def _lanes() -> int:
    from .target import host_cpu

    return host_cpu().vector_lanes


def pick_block(n: int, lanes: int) -> int:
    """The output-channel block: the largest of 2*lanes, lanes, ... that divides n
    (1 when n is odd)."""
    for b in (2 * lanes, lanes, 8, 4, 2):
        if b <= n and n % b == 0:
            return b
    return 1


def emit_conv2d(ctx, x, xshape, w: np.ndarray, strides, dil, groups, pb, pe, name: str):
    """Conv2d over NCHW input ``x`` with constant OIHW weights ``w`` (no bias)."""
    from tvm import te, topi

    OC, ICg, KH, KW = w.shape
    N, C, H, W = xshape
    bn = pick_block(OC // groups if groups > 1 else OC, _lanes())
    if groups > 1 and (OC // groups) % bn:
        bn = 1
    # [OC/bn, ICg, KH, KW, bn]
    wp = np.ascontiguousarray(w.reshape(OC // bn, bn, ICg, KH, KW).transpose(0, 2, 3, 4, 1)).astype(np.float32)
    wv = ctx.param(wp, name + ".weight")
    sh, sw = strides
    dh, dw = dil
    Hp, Wp = H + pb[0] + pe[0], W + pb[1] + pe[1]
    OH = (Hp - (KH - 1) * dh - 1) // sh + 1
    OW = (Wp - (KW - 1) * dw - 1) // sw + 1
    ocpg = OC // groups
    if any(pb) or any(pe):
        x = ctx.te(lambda t: topi.nn.pad(t, [0, 0, pb[0], pb[1]], [0, 0, pe[0], pe[1]], pad_value=0.0,
                                         name="gpad"), x)

    def compute(data, wk):
        ic = te.reduce_axis((0, ICg), name="ic")
        kh = te.reduce_axis((0, KH), name="kh")
        kw = te.reduce_axis((0, KW), name="kw")
        nb = data.shape[0]
        if groups == 1:
            def f(n_, oc, oh, ow):
                return te.sum(data[n_, ic, oh * sh + kh * dh, ow * sw + kw * dw] * wk[oc // bn, ic, kh, kw, oc % bn],
                              axis=[ic, kh, kw])
        else:
            def f(n_, oc, oh, ow):
                return te.sum(data[n_, (oc // ocpg) * ICg + ic, oh * sh + kh * dh, ow * sw + kw * dw]
                              * wk[oc // bn, ic, kh, kw, oc % bn], axis=[ic, kh, kw])
        return te.compute((nb, OC, OH, OW), f, name=CONV_BLOCK,
                          attrs={"graphopt_bn": bn, "graphopt_groups": groups})

    return ctx.te(compute, x, wv, primfunc_name_hint="gconv")


def emit_dense(ctx, a, w_nk: np.ndarray, name: str):
    """``a`` [M, K] times the constant ``w_nk`` [N, K] transposed: [M, N].

    When N has no block of at least a vector (GPT-2's vocabulary, 50257), the weights are
    padded with zero rows to a multiple of ``2 * lanes`` and the padded columns sliced off
    the result: otherwise every output column would be a scalar dot product."""
    from tvm import relax, te

    N, K = w_nk.shape
    lanes = _lanes()
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
                          name=DENSE_BLOCK, attrs={"graphopt_bn": bn})

    out = ctx.te(compute, a, wv, primfunc_name_hint="gdense")
    if Np != N:
        out = ctx.emit(relax.op.strided_slice(out, axes=[1], begin=[0], end=[N]))
    return out
