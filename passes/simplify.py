"""Algebraic simplification: small (pattern, replacement) rules, each with its algebra on
one line and its conditions on dtypes and shapes, grouped in rule sets.

Every rule here replaces a node by a value that is equal element for element, with the
same dtype and the same shape (the driver refuses a replacement whose type differs, or
one that would rename a graph output). Where a rule is exact only up to the sign of zero,
it says so: IEEE compares -0 and +0 equal, and so does the oracle.

Commutative ops match in either operand order (the matcher does that), so no rule is
spelled twice. Rules that only bypass nodes (``Neg(Neg(x)) -> x``) are marked ``shared``:
an inner node with other users stays for them, and the rewrite is still right.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from graphopt.ir import DType, Graph, Value
from graphopt.pipeline.base import Pass, PassContext, register_pass
from graphopt.pipeline.errors import PassOptionError
from graphopt.rewrite import Bind, Const, Op, Opt, RuleSet, Var, apply_rules

# ---------------------------------------------------------------------------- helpers


def _fills(value) -> callable:
    """A Const predicate: every element equals ``value``."""

    def pred(a: np.ndarray) -> Optional[str]:
        if a.dtype == object or a.dtype.kind not in "biuf":
            return f"is {a.dtype}, not numeric"
        if a.size == 0:
            return "is empty"
        if not np.all(a == value):
            return f"is not all {value}"
        return None

    return pred


def _broadcasts_into(m, const: str, x: str) -> Optional[str]:
    """The constant's shape broadcasts into x's without growing it: rank <= x's rank and
    each (right-aligned) dim is 1 or equal to x's, so ``x op c`` has x's shape."""
    cs = m[const].type.shape
    xs = m[x].type.shape
    if xs is None:
        return f"the rank of %{m[x].name} is unknown"
    if len(cs) > len(xs):
        return f"the constant's rank {len(cs)} is larger than x's {len(xs)}: the result would broadcast"
    for c, d in zip(reversed(cs), reversed(xs)):
        if c != 1 and c != d:
            return f"the constant's shape {list(cs)} would broadcast x's {list(xs)}"
    return None


def _same_type(m, a: str, b: str) -> Optional[str]:
    ta, tb = m[a].type, m[b].type
    if ta.dtype is not tb.dtype:
        return f"dtype {ta.dtype.short} differs from {tb.dtype.short}"
    if not (ta.is_static and tb.is_static):
        if ta.shape is None or tb.shape is None or ta.shape != tb.shape:
            return f"shapes {ta} and {tb} are not known to be equal"
        return None
    if ta.shape != tb.shape:
        return f"shape {list(ta.shape)} differs from {list(tb.shape)}"
    return None


def _const_axes(v: Value, rank: Optional[int]) -> Optional[tuple[int, ...]]:
    if v is None or not v.is_constant or v.const.is_elided or rank is None:
        return None
    a = v.const.numpy().reshape(-1)
    return tuple(sorted(int(i) % rank if rank else int(i) for i in a))


# ---------------------------------------------------------------------------- rule sets
noops = RuleSet("simplify")
casts = RuleSet("simplify")
shapes = RuleSet("simplify")
arith = RuleSet("simplify")

# Identity(x) = x
noops.add("identity", "Identity(x) -> x", Op("Identity", Var("x")), lambda rw, m: m.x)


def _inference_dropout(m) -> Optional[str]:
    t = m.bindings.get("training")
    if t is None:
        return None
    if not t.is_constant or t.const.is_elided:
        return f"training_mode %{t.name} is not a constant"
    if bool(np.any(t.const.numpy())):
        return "training_mode is true"
    return None


# Dropout(x) = x in inference mode (training_mode absent or false); the mask must be unused
noops.add("dropout", "Dropout(x, ratio, training_mode=false) -> x (mask unused)",
          Op("Dropout", Var("x"), Opt(Var("ratio")), Opt(Var("training"))), lambda rw, m: [m.x, None],
          where=_inference_dropout)

# Sum(x) = Max(x) = Min(x) = Mean(x) = x for a single input
for _op in ("Sum", "Max", "Min", "Mean"):
    noops.add(f"{_op.lower()}-single", f"{_op}(x) -> x", Op(_op, Var("x")), lambda rw, m: m.x)
# Concat(x) = x for a single input
noops.add("concat-single", "Concat(x) -> x", Op("Concat", Var("x")), lambda rw, m: m.x)

# Cast(x: T, to=T) = x
casts.add("cast-same-type", "Cast(x: T, to=T) -> x", Op("Cast", Var("x"), name="cast"), lambda rw, m: m.x,
          where=lambda m: None if m.cast.output.type.dtype is m.x.type.dtype
          else f"casts {m.x.type.dtype.short} to {m.cast.output.type.dtype.short}")
# CastLike(x: T, y: T) = x
casts.add("castlike-same-type", "CastLike(x: T, y: T) -> x", Op("CastLike", Var("x"), Var("y")), lambda rw, m: m.x,
          where=lambda m: None if m.x.type.dtype is m.y.type.dtype
          else f"casts {m.x.type.dtype.short} to {m.y.type.dtype.short}")

# Types that hold every value of the key type exactly (so a round trip through them is the identity).
_EXACT_WIDER = {
    DType.BOOL: {DType.INT8, DType.INT16, DType.INT32, DType.INT64, DType.UINT8, DType.UINT16, DType.UINT32,
                 DType.UINT64, DType.FLOAT16, DType.FLOAT32, DType.FLOAT64},
    DType.INT8: {DType.INT16, DType.INT32, DType.INT64, DType.FLOAT16, DType.FLOAT32, DType.FLOAT64},
    DType.UINT8: {DType.INT16, DType.INT32, DType.INT64, DType.UINT16, DType.UINT32, DType.UINT64, DType.FLOAT16,
                  DType.FLOAT32, DType.FLOAT64},
    DType.INT16: {DType.INT32, DType.INT64, DType.FLOAT32, DType.FLOAT64},
    DType.UINT16: {DType.INT32, DType.INT64, DType.UINT32, DType.UINT64, DType.FLOAT32, DType.FLOAT64},
    DType.INT32: {DType.INT64, DType.FLOAT64},
    DType.UINT32: {DType.INT64, DType.UINT64, DType.FLOAT64},
    DType.FLOAT16: {DType.FLOAT32, DType.FLOAT64},
    DType.FLOAT32: {DType.FLOAT64},
}


def _exact_round_trip(m) -> Optional[str]:
    a, b, c = m.x.type.dtype, m.mid.type.dtype, m.outer.output.type.dtype
    if c is not a:
        return f"the round trip ends in {c.short}, not {a.short}"
    if b not in _EXACT_WIDER.get(a, ()):
        return f"{b.short} does not hold every {a.short} value exactly"
    return None


# Cast(Cast(x: A, to=B), to=A) = x when B holds every value of A exactly
casts.add("cast-round-trip", "Cast(Cast(x: A, to=B), to=A) -> x (B holds every A exactly)",
          Op("Cast", Op("Cast", Var("x")), name="outer"), lambda rw, m: m.x,
          where=lambda m: _exact_round_trip(_with(m, "mid", m.outer.inputs[0])), shared=True)


def _with(m, key, v):
    m.bindings[key] = v
    return m


def _reshape_noop(m) -> Optional[str]:
    return _same_type(m, "x", "y")


# Reshape(x, s) = x when the result has x's (static) shape
shapes.add("reshape-noop", "Reshape(x, s) -> x (the shape does not change)",
           Op("Reshape", Var("x"), Var("s"), name="r"), lambda rw, m: m.x,
           where=lambda m: _reshape_noop(_with(m, "y", m.r.output)))


def _outer_shape_ok(m) -> Optional[str]:
    s = m.s2.const.numpy()
    if int(m.allowzero) == 0 and np.any(s == 0):
        return "the outer shape has a 0, which copies a dim of the inner result"
    return None


# Reshape(Reshape(x, s1), s2) = Reshape(x, s2) when s2 names no dim of the inner result (no 0s)
@shapes.rule("reshape-reshape", "Reshape(Reshape(x, s1), s2) -> Reshape(x, s2) (s2 has no 0)",
             Op("Reshape", Op("Reshape", Var("x"), Var()), Const("s2"), allowzero=Bind("allowzero")),
             where=_outer_shape_ok, shared=True)
def _reshape_reshape(rw, m):
    attrs = {"allowzero": 1} if int(m.allowzero or 0) else {}
    return rw.op("Reshape", [m.x, m.s2], attrs).output


def _perm(p, rank):
    return list(p) if p is not None else list(reversed(range(rank)))


# Transpose(x, perm=identity) = x
shapes.add("transpose-identity", "Transpose(x, perm=[0..r-1]) -> x",
           Op("Transpose", Var("x"), perm=Bind("p")), lambda rw, m: m.x,
           where=lambda m: (None if m.x.type.rank is not None and _perm(m.p, m.x.type.rank) == list(range(m.x.type.rank))
                            else "the permutation is not the identity"))


def _rank_known(m) -> Optional[str]:
    return None if m.x.type.rank is not None else f"the rank of %{m.x.name} is unknown"


# Transpose(Transpose(x, p), q) = Transpose(x, p[q]) (and = x when p[q] is the identity)
@shapes.rule("transpose-transpose", "Transpose(Transpose(x, p), q) -> Transpose(x, [p[i] for i in q]) or x",
             Op("Transpose", Op("Transpose", Var("x"), perm=Bind("p")), perm=Bind("q")), where=_rank_known,
             shared=True)
def _transpose_transpose(rw, m):
    r = m.x.type.rank
    p, q = _perm(m.p, r), _perm(m.q, r)
    comp = [p[i] for i in q]
    if comp == list(range(r)):
        return m.x
    return rw.op("Transpose", [m.x], {"perm": comp}).output


def _squeeze_unsqueeze(m) -> Optional[str]:
    r = m.x.type.rank
    if r is None:
        return f"the rank of %{m.x.name} is unknown"
    n1 = m.a1.const.numel if m.a1.is_constant else 0
    a1 = _const_axes(m.a1, r + n1)
    a2 = _const_axes(m.a2, r + n1)
    if a1 is None or a2 is None:
        return "the axes are not constant"
    return None if a1 == a2 else f"unsqueezed axes {list(a1)} differ from squeezed axes {list(a2)}"


# Squeeze(Unsqueeze(x, axes), axes) = x
shapes.add("squeeze-unsqueeze", "Squeeze(Unsqueeze(x, a), a) -> x",
           Op("Squeeze", Op("Unsqueeze", Var("x"), Var("a1")), Var("a2")), lambda rw, m: m.x,
           where=_squeeze_unsqueeze, shared=True)


def _unsqueeze_squeeze(m) -> Optional[str]:
    r = m.x.type.rank
    if r is None:
        return f"the rank of %{m.x.name} is unknown"
    a1 = _const_axes(m.a1, r)
    a2 = _const_axes(m.a2, r)
    if a1 is None or a2 is None:
        return "the axes are not constant"
    return None if a1 == a2 else f"squeezed axes {list(a1)} differ from unsqueezed axes {list(a2)}"


# Unsqueeze(Squeeze(x, axes), axes) = x (the squeezed dims were 1, and come back as 1)
shapes.add("unsqueeze-squeeze", "Unsqueeze(Squeeze(x, a), a) -> x",
           Op("Unsqueeze", Op("Squeeze", Var("x"), Var("a1")), Var("a2")), lambda rw, m: m.x,
           where=_unsqueeze_squeeze, shared=True)

# Expand(x, s) = x when the result has x's (static) shape
shapes.add("expand-noop", "Expand(x, s) -> x (the shape does not change)",
           Op("Expand", Var("x"), Var(), name="e"), lambda rw, m: m.x,
           where=lambda m: _same_type(_with(m, "y", m.e.output), "x", "y"))
# Flatten(x) = x when x is already 2-D with the same shape
shapes.add("flatten-noop", "Flatten(x) -> x (x is already the 2-D result)",
           Op("Flatten", Var("x"), name="f"), lambda rw, m: m.x,
           where=lambda m: _same_type(_with(m, "y", m.f.output), "x", "y"))

# x * 1 = x (exact for every dtype; 1 * x too: the matcher tries both orders of a
# commutative op); the constant must not broadcast x
arith.add("mul-one", "x * 1 -> x", Op("Mul", Var("x"), Const("c", _fills(1))), lambda rw, m: m.x,
          where=lambda m: _broadcasts_into(m, "c", "x"))
# x + 0 = x (and 0 + x; exact for ints; for floats up to the sign of zero: -0 + 0 = +0)
arith.add("add-zero", "x + 0 -> x", Op("Add", Var("x"), Const("c", _fills(0))), lambda rw, m: m.x,
          where=lambda m: _broadcasts_into(m, "c", "x"))
# x - 0 = x (exact: -0 - 0 = -0)
arith.add("sub-zero", "x - 0 -> x", Op("Sub", Var("x"), Const("c", _fills(0))), lambda rw, m: m.x,
          where=lambda m: _broadcasts_into(m, "c", "x"))
# x / 1 = x (exact for every dtype)
arith.add("div-one", "x / 1 -> x", Op("Div", Var("x"), Const("c", _fills(1))), lambda rw, m: m.x,
          where=lambda m: _broadcasts_into(m, "c", "x"))
# x ** 1 = x (floats; Pow's result has x's dtype)
arith.add("pow-one", "x ** 1 -> x", Op("Pow", Var("x"), Const("c", _fills(1))), lambda rw, m: m.x,
          where=lambda m: _broadcasts_into(m, "c", "x"))
# -(-x) = x (exact, including for the most negative int: both negations wrap)
arith.add("neg-neg", "Neg(Neg(x)) -> x", Op("Neg", Op("Neg", Var("x"))), lambda rw, m: m.x, shared=True)
# not(not x) = x
arith.add("not-not", "Not(Not(x)) -> x", Op("Not", Op("Not", Var("x"))), lambda rw, m: m.x, shared=True)

RULE_SETS = {"noops": noops, "casts": casts, "shapes": shapes, "arith": arith}
RULES = [r for rs in RULE_SETS.values() for r in rs.rules]


@register_pass
@dataclass
class Simplify(Pass):
    name = "simplify"
    summary = "algebraic no-ops: Identity, inference Dropout, same-type Cast, cancelling reshape/transpose pairs, x*1, x+0"

    rule_sets: str = "noops,casts,shapes,arith"  # comma-separated, from RULE_SETS

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        rules = []
        for name in (s.strip() for s in self.rule_sets.split(",") if s.strip()):
            rs = RULE_SETS.get(name)
            if rs is None:
                raise PassOptionError(f"pass 'simplify': no rule set {name!r} (rule sets: {', '.join(RULE_SETS)})")
            rules.extend(rs.rules)
        return apply_rules(graph, ctx, rules)
