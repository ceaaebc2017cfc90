"""The packed conv2d: NCHW activations, OIHW weights packed to [OC/bn, IC/g, KH, KW, bn]."""

from __future__ import annotations

import numpy as np

from .common import pick_block, vector_lanes
from .tags import BLOCK_KEY, CONV2D, TAG_KEY


def emit_conv2d(ctx, x, xshape, w: np.ndarray, strides, dil, groups, pb, pe, name: str):
    """Conv2d over NCHW input ``x`` with constant OIHW weights ``w`` (no bias)."""
    from tvm import te, topi

    OC, ICg, KH, KW = w.shape
    N, C, H, W = xshape
    bn = pick_block(OC // groups if groups > 1 else OC, vector_lanes())
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
        return te.compute((nb, OC, OH, OW), f, name=CONV2D,
                          attrs={BLOCK_KEY: bn, "graphopt_groups": groups, TAG_KEY: CONV2D})

    return ctx.te(compute, x, wv, primfunc_name_hint=CONV2D)
