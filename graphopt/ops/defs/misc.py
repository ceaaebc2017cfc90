"""Other ops: Einsum, Resize, NonMaxSuppression, Det."""

from __future__ import annotations

import re

import numpy as np

from ...ir import AttrKind
from ...ir.types import Dim, DType
from .. import flops
from ..registry import REQUIRED, AttrSpec, InferContext, PatternKind, register, set_traits
from ._shapes import broadcast, broadcast_dim, check_dtype, check_rank, const_ints, fmt_shape, norm_axes, same_dtype, tt
from ._specs import F, NUM, float_attr, int_attr

_TERM = re.compile(r"^(?:[A-Za-z]|\.\.\.)*$")


@register("Einsum", ["Inputs*"], ["Output"], {"equation": AttrSpec(AttrKind.STRING, REQUIRED)})
def infer_einsum(ctx: InferContext):
    """Labels map to dims (equal or broadcast), '...' to broadcast batch dims; without '->'
    the output is '...' then the labels used once, in alphabetical order."""
    dt = same_dtype(ctx, range(ctx.num_inputs))
    check_dtype(ctx, 0, NUM)
    eq = ctx.attr("equation").replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != ctx.num_inputs:
        raise ctx.fail(f"Einsum equation {eq!r} has {len(terms)} operands, the node has {ctx.num_inputs} inputs")
    for t in terms + ([rhs] if arrow else []):
        if not _TERM.match(t) or t.count("...") > 1:
            raise ctx.fail(f"Einsum equation {eq!r}: bad term {t!r}")
    dims: dict[str, list[Dim]] = {}
    ell: list = []
    counts: dict[str, int] = {}
    unknown = False
    for i, t in enumerate(terms):
        labels = t.replace("...", "")
        for c in labels:
            counts[c] = counts.get(c, 0) + 1
        s = ctx.shape(i)
        if s is None:
            unknown = True
            continue
        n_ell = len(s) - len(labels)
        if n_ell < 0 or (n_ell > 0 and "..." not in t):
            raise ctx.fail(f"Einsum term {t!r} does not fit input {i} of shape {fmt_shape(s)}")
        pos = t.find("...")
        before = t[:pos] if pos >= 0 else t
        if pos >= 0:
            ell.append(tuple(s[len(before):len(before) + n_ell]))
        for part, off in ((before, 0), (t[pos + 3:] if pos >= 0 else "", len(before) + max(n_ell, 0))):
            for j, c in enumerate(part):
                dims.setdefault(c, []).append(s[off + j])
    if unknown and not arrow:
        return [tt(dt, None)]
    if not arrow:
        rhs = ("..." if any("..." in t for t in terms) else "") + "".join(sorted(c for c, n in counts.items() if n == 1))
    for c in rhs.replace("...", ""):
        if c not in counts:
            raise ctx.fail(f"Einsum output label {c!r} does not appear in the inputs of {eq!r}")
    if unknown:
        if "..." in rhs:
            return [tt(dt, None)]
        return [tt(dt, [_label_dim(ctx, dims.get(c, []), k) for k, c in enumerate(rhs)])]
    ell_shape = broadcast(ctx, ell) if ell else ()
    out: list[Dim] = []
    pos = rhs.find("...")
    for k, c in enumerate(rhs.replace("...", "") if pos < 0 else rhs[:pos]):
        out.append(_label_dim(ctx, dims[c], k))
    if pos >= 0:
        out.extend(ell_shape)  # type: ignore[arg-type]
        for c in rhs[pos + 3:]:
            out.append(_label_dim(ctx, dims[c], len(out)))
    return [tt(dt, out)]


def _label_dim(ctx: InferContext, dims: list, k: int) -> Dim:
    if not dims:
        return ctx.fresh_dim(0, k)
    try:
        return broadcast_dim(ctx, dims, 0, k)
    except Exception:
        raise ctx.fail(f"Einsum label dims differ: {dims}") from None


_RESIZE_ATTRS = {
    "antialias": int_attr(0), "axes": AttrSpec(AttrKind.INTS), "coordinate_transformation_mode": AttrSpec(AttrKind.STRING, "half_pixel"),
    "cubic_coeff_a": float_attr(-0.75), "exclude_outside": int_attr(0), "extrapolation_value": float_attr(0.0),
    "keep_aspect_ratio_policy": AttrSpec(AttrKind.STRING, "stretch"), "mode": AttrSpec(AttrKind.STRING, "nearest"),
    "nearest_mode": AttrSpec(AttrKind.STRING, "round_prefer_floor"),
}


def _present(ctx: InferContext, i: int) -> bool:
    """An optional input given and not an empty tensor."""
    if not ctx.has_input(i):
        return False
    s = ctx.shape(i)
    return not (s is not None and len(s) == 1 and s[0] == 0)


@register("Resize", ["X", "roi?", "scales?", "sizes?"], ["Y"], _RESIZE_ATTRS)
def infer_resize(ctx: InferContext):
    """Sizes give the output dims (scaled by one factor under keep_aspect_ratio_policy), scales
    give floor(dim * scale)."""
    dt = ctx.dtype(0)
    x = ctx.shape(0)
    if ctx.attr("mode") not in ("nearest", "linear", "cubic"):
        raise ctx.fail(f"Resize mode must be nearest, linear or cubic, got {ctx.attr('mode')!r}")
    policy = ctx.attr("keep_aspect_ratio_policy")
    if policy not in ("stretch", "not_larger", "not_smaller"):
        raise ctx.fail(f"keep_aspect_ratio_policy must be stretch, not_larger or not_smaller, got {policy!r}")
    has_scales, has_sizes = _present(ctx, 2), _present(ctx, 3)
    if has_scales == has_sizes:
        raise ctx.fail("Resize needs exactly one of scales and sizes")
    if x is None:
        return [tt(dt, None)]
    r = len(x)
    axes = norm_axes(ctx, ctx.attr("axes") or range(r), r)
    out = list(x)
    if has_sizes:
        check_dtype(ctx, 3, {DType.INT64})
        sizes = const_ints(ctx, 3, "sizes")
        if sizes is None:
            for a in axes:
                out[a] = ctx.fresh_dim(0, a)
            return [tt(dt, out)]
        if len(sizes) != len(axes):
            raise ctx.fail(f"Resize sizes {sizes} should have {len(axes)} values")
        if policy == "stretch":
            for a, s in zip(axes, sizes):
                out[a] = s
        elif all(isinstance(x[a], int) for a in axes):
            ratios = [s / x[a] for a, s in zip(axes, sizes)]
            scale = min(ratios) if policy == "not_larger" else max(ratios)
            for a in axes:
                out[a] = int(np.floor(scale * x[a] + 0.5))
        else:
            for a in axes:
                out[a] = ctx.fresh_dim(0, a)
        return [tt(dt, out)]
    check_dtype(ctx, 2, F)
    scales = ctx.const(2)
    if scales is None:
        for a in axes:
            out[a] = ctx.fresh_dim(0, a)
        return [tt(dt, out)]
    scales = np.asarray(scales, dtype=np.float32).reshape(-1)
    if len(scales) != len(axes):
        raise ctx.fail(f"Resize scales {scales.tolist()} should have {len(axes)} values")
    if (scales <= 0).any():
        raise ctx.fail(f"Resize scales {scales.tolist()} must be positive")
    for a, s in zip(axes, scales):
        d = x[a]
        if isinstance(d, int):
            out[a] = int(np.floor(np.float32(d) * s))
        elif s == 1:
            out[a] = d
        else:
            out[a] = ctx.fresh_dim(0, a)
    return [tt(dt, out)]


@register("NonMaxSuppression", ["boxes", "scores", "max_output_boxes_per_class?", "iou_threshold?", "score_threshold?"],
          ["selected_indices"], {"center_point_box": int_attr(0)})
def infer_nms(ctx: InferContext):
    """[number selected (data-dependent), 3] of i64."""
    check_rank(ctx, 0, 3)
    check_rank(ctx, 1, 3)
    return [tt(DType.INT64, (ctx.fresh_dim(0, 0), 3))]


@register("Det", ["X"], ["Y"])
def infer_det(ctx: InferContext):
    dt = check_dtype(ctx, 0, F)
    x = check_rank(ctx, 0, at_least=2)
    return [tt(dt, None if x is None else x[:-2])]


set_traits(["Det", "Einsum", "NonMaxSuppression", "Resize"], kind=PatternKind.OPAQUE)


def _einsum_flops(site: flops.FlopSite):
    """Two per element of the largest operand or result (a multiply-add per element touched)."""
    if site.output() is None or site.input(0) is None:
        return None
    return 2 * max(flops.numel(site.output()),
                   max(flops.numel(site.shape(v)) for v in site.node.inputs if v is not None))


set_traits(["Einsum"], flops=_einsum_flops)
