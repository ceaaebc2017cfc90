"""graphopt.RotaryEmbedding lowered in place: one TE compute over X, each output element
reading its own element and its rotation partner (an injective op TVM fuses with the
Reshape/Transpose that makes q and k), rather than its decomposition's Slices, Neg and
Concat as a kernel of its own. Rounds as the decomposition: x*cos + (+-partner)*sin."""

from __future__ import annotations

from ...ops import attr_value
from .helpers import i64, tirx
from .registry import register_lowering


@register_lowering("RotaryEmbedding", domain="graphopt")
def _rotary(ctx, n):
    from tvm import te

    x, cos, sin = n.inputs
    d = x.type.shape[-1]
    r = attr_value(n, "rotary_embedding_dim") or d
    interleaved = attr_value(n, "interleaved")
    rank = len(x.type.shape)
    T = tirx()

    def table_index(v, idx):
        """cos/sin broadcast against X[..., :R]: their size-1 dims read index 0; past R
        (the pass-through part, not read) the last index is clamped to stay in bounds."""
        shape = v.type.shape
        out = []
        for k, dim in enumerate(shape):
            a = rank - len(shape) + k
            if dim == 1:
                out.append(i64(0))
            elif a == rank - 1:
                out.append(T.min(idx[a], i64(r - 1)))
            else:
                out.append(idx[a])
        return out

    def compute(X, C, S):
        def f(*idx):
            j = idx[-1]
            if interleaved:  # pairs (x0, x1) -> (-x1, x0)
                first = T.floormod(j, i64(2)) == i64(0)
                partner = T.Select(first, j + i64(1), j - i64(1))
            else:  # rotate_half: cat(-x[h:], x[:h])
                first = j < i64(r // 2)
                partner = T.Select(first, j + i64(r // 2), j - i64(r // 2))
            if r < d:  # past R the partner is not used: keep its index in bounds anyway
                partner = T.min(partner, i64(r - 1))
            p = X(*idx[:-1], partner)
            rot = X(*idx) * C(*table_index(cos, idx)) + T.Select(first, -p, p) * S(*table_index(sin, idx))
            # past R: X passed through (if_then_else does not evaluate the rotated branch there)
            return rot if r == d else T.if_then_else(j < i64(r), rot, X(*idx))

        return te.compute(X.shape, f, name="rotary_embedding")

    return ctx.te(compute, ctx.get(x), ctx.get(cos), ctx.get(sin))
