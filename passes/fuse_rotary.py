"""Fuse rotary position embeddings (what transformers' apply_rotary_pos_emb exports to) into
``graphopt.RotaryEmbedding``.

    x*cos + cat(-x[..., h:], x[..., :h])*sin                       = RotaryEmbedding(x, cos, sin)   (h = D/2)
    x*cos + flatten(stack(-x[..., 1::2], x[..., ::2]))*sin         = RotaryEmbedding(x, cos, sin, interleaved=1)
    cat(RotaryEmbedding(x[..., :R], cos, sin), x[..., R:])         = RotaryEmbedding(x, cos, sin, rotary_embedding_dim=R)

Llama, Qwen2, Mistral, Gemma and Phi-3 rotate q and k with rotate_half (two sites per
layer); torch.onnx writes its halves as two Slices of the last axis (the upper one ending at
INT64_MAX) or as a Split, Neg and Concat. GPT-J rotates pairs (Slices with step 2, Neg, a
stack written as Unsqueeze + Concat, Reshape back). Phi-3 and GPT-NeoX with a partial rotary
factor (and GPT-J) rotate only the first R dims: Slice x in two, rotate the first part,
Concat the second back, which the last rule folds into the op's rotary_embedding_dim.
cos and sin are any values (a folded table when positions are static, or Cos/Sin of the
position frequencies computed on the fly) of x's dtype that broadcast to the rotated part
without widening it. Exact: the op's decomposition is the same ops in the same order.
Meant for -O2, before or after fuse-attention (either order fuses both: the attention takes
the rotated q and k as its inputs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

from graphopt.ir import Graph, Node
from graphopt.ir.function import DOMAIN
from graphopt.ops.defs.rotary import ROTARY, why_not_rotary
from graphopt.pipeline.base import Pass, PassContext, register_pass
from graphopt.rewrite import Bind, Const, Op, Opt, RuleSet, Var, apply_rules

rules = RuleSet("fuse-rotary")


def _x(v) -> Optional[str]:
    shape = v.type.shape
    if not v.type.dtype.is_float:
        return f"%{v.name} is {v.type.dtype.short}, not a float"
    if not shape or not isinstance(shape[-1], int):
        return f"%{v.name} {'has unknown rank' if shape is None else 'has no known last dim'}"
    return None


X = Var("x", _x)
COS, SIN = Var("cos"), Var("sin")


def _slice(name: str, of=X) -> Op:
    return Op("Slice", of, Const(), Const(), Opt(Const()), Opt(Const()), name=name)


def slice_indices(node: Node) -> Union[range, str]:
    """The indices of the last axis that a Slice node keeps (ONNX's clamping applied), or
    why it is not a slice of the last axis alone."""
    x = node.inputs[0]
    rank, d = len(x.type.shape), x.type.shape[-1]
    vals = [None if i >= len(node.inputs) or node.inputs[i] is None else [int(a) for a in node.inputs[i].const.numpy().reshape(-1)]
            for i in range(1, 5)]
    starts, ends, axes, steps = vals
    axes = axes if axes is not None else list(range(len(starts)))
    steps = steps if steps is not None else [1] * len(starts)
    if len(axes) != 1 or axes[0] % rank != rank - 1:
        return f"Slice {node.name!r} slices axes {axes}, not only the last one"
    if steps[0] <= 0:
        return f"Slice {node.name!r} steps by {steps[0]}"

    def clamp(i):
        return min(max(i + d if i < 0 else i, 0), d)

    return range(clamp(starts[0]), clamp(ends[0]), steps[0])


def _show(r: range) -> str:
    return f"x[..., {r.start}:{r.stop}{'' if r.step == 1 else ':' + str(r.step)}]"


def _last_axis(node: Node, axis: int) -> Optional[str]:
    rank = len(node.outputs[0].type.shape)
    return None if axis % rank == rank - 1 else f"{node.op_type} {node.name!r} joins axis {axis}, not the last one"


def _halves(m, neg_part: range, other: range) -> Optional[str]:
    """rotate_half: Neg takes the upper half x[..., h:], the Concat's second part the lower."""
    d = m.x.type.shape[-1]
    h = d // 2
    if d % 2:
        return f"the head dim {d} of %{m.x.name} is odd"
    lo, hi = range(0, h), range(h, d)
    if neg_part == lo and other == hi:
        return (f"the Concat's halves are swapped: Neg takes {_show(neg_part)} and the second part is {_show(other)} "
                f"(rotate_half is cat(-{_show(hi)}, {_show(lo)}))")
    for part, want, what in ((neg_part, hi, "Neg's"), (other, lo, "the Concat's second")):
        if part.step != 1:
            return f"{what} half {_show(part)} is strided"
        if part != want:
            cut = part.start if what == "Neg's" else part.stop
            return f"the {what} half {_show(part)} splits at {cut}, not D/2={h} (D={d})"
    return None


def _fits(m, interleaved: int = 0) -> Optional[str]:
    why = why_not_rotary(m.x.type, m.cos.type, m.sin.type, interleaved)
    return f"%{m.x.name} with cos %{m.cos.name} and sin %{m.sin.name}: {why}" if why else None


def _sliced_halves(m) -> Optional[str]:
    r = _last_axis(m.cat, m.axis)
    if r:
        return r
    neg_part, other = slice_indices(m.hi), slice_indices(m.lo)
    for s in (neg_part, other):
        if isinstance(s, str):
            return s
    return _halves(m, neg_part, other) or _fits(m)


def _split_halves(m) -> Optional[str]:
    sp = m.split
    r = _last_axis(m.cat, m.axis)
    if r:
        return r
    rank = len(m.x.type.shape)
    if m.split_axis % rank != rank - 1:
        return f"Split {sp.name!r} splits axis {m.split_axis}, not the last one"
    if len(sp.outputs) != 2:
        return f"Split {sp.name!r} has {len(sp.outputs)} outputs, not two halves"
    if m.neg.inputs[0] is not sp.outputs[1] or m.cat.inputs[1] is not sp.outputs[0]:
        return f"the Concat's halves are swapped: Neg takes Split {sp.name!r}'s first output"
    sizes = [o.type.shape[-1] for o in sp.outputs]
    d = m.x.type.shape[-1]
    if sizes[0] != sizes[1]:
        return f"Split {sp.name!r} splits at {sizes[0]}, not D/2={d // 2} (D={d})"
    return _fits(m)


def _rotary(interleaved: int):
    def replace(rw, m):
        rw.graph.root.opset_imports.setdefault(DOMAIN, 1)
        attrs = {"interleaved": 1} if interleaved else {}
        return rw.op(ROTARY, [m.x, m.cos, m.sin], attrs, domain=DOMAIN, name=m.out.name).output

    return replace


def _apply(rot: Op) -> Op:
    """x * cos + rot * sin (the matcher tries both operand orders of each Mul and the Add)."""
    return Op("Add", Op("Mul", X, COS), Op("Mul", rot, SIN), name="out")


HALVES = Op("Concat", Op("Neg", _slice("hi"), name="neg"), _slice("lo"), name="cat", axis=Bind("axis"))
rules.add("rotate-half", "x*cos + cat(-x[..., D/2:], x[..., :D/2])*sin -> RotaryEmbedding(x, cos, sin)",
          _apply(HALVES), _rotary(0), where=_sliced_halves)

SPLIT = Op("Split", X, Opt(Const()), name="split", axis=Bind("split_axis"))
rules.add("rotate-half-split", "x*cos + cat(-split(x)[1], split(x)[0])*sin -> RotaryEmbedding(x, cos, sin)",
          _apply(Op("Concat", Op("Neg", SPLIT, name="neg"), SPLIT, name="cat", axis=Bind("axis"))), _rotary(0),
          where=_split_halves)


def _pairs(m) -> Optional[str]:
    """GPT-J: Reshape(stack(-x[..., 1::2], x[..., ::2])) back to x's shape."""
    x = m.x
    d, rank = x.type.shape[-1], len(x.type.shape)
    for u in (m.u_odd, m.u_even):
        axes = [int(a) % (rank + 1) for a in u.inputs[1].const.numpy().reshape(-1)]
        if axes != [rank]:
            return f"Unsqueeze {u.name!r} inserts axes {axes}, not a new last axis {rank}"
    r = _last_axis(m.cat, m.axis)
    if r:
        return r
    if m.flat.outputs[0].type.shape != x.type.shape:
        return f"Reshape {m.flat.name!r} gives {list(m.flat.outputs[0].type.shape)}, not %{x.name}'s shape"
    odd, even = slice_indices(m.odd), slice_indices(m.even)
    for s in (odd, even):
        if isinstance(s, str):
            return s
    if odd == range(0, d, 2) and even == range(1, d, 2):
        return f"the stacked pairs are swapped: Neg takes {_show(odd)}, GPT-J negates {_show(range(1, d, 2))}"
    for part, want in ((odd, range(1, d, 2)), (even, range(0, d, 2))):
        if part != want:
            return f"Slice takes {_show(part)}, not {_show(want)} (D={d})"
    return _fits(m, 1)


PAIRS = Op("Reshape", Op("Concat", Op("Unsqueeze", Op("Neg", _slice("odd")), Const(), name="u_odd"),
                         Op("Unsqueeze", _slice("even"), Const(), name="u_even"), name="cat", axis=Bind("axis")),
           Const(), name="flat")
rules.add("interleaved", "x*cos + flatten(stack(-x[..., 1::2], x[..., ::2]))*sin -> RotaryEmbedding(x, cos, sin, "
          "interleaved=1)", _apply(PAIRS), _rotary(1), where=_pairs)


def _partial_fits(m) -> Optional[str]:
    q = m.q
    r = _last_axis(m.out, m.axis)
    if r:
        return r
    if not q.type.shape or not isinstance(q.type.shape[-1], int):
        return f"%{q.name} has no known last dim"
    d = q.type.shape[-1]
    rot, rest = slice_indices(m.rot), slice_indices(m.rest)
    for s in (rot, rest):
        if isinstance(s, str):
            return s
    w = len(rot)
    if rot != range(0, w) or rest != range(w, d):
        return f"the rotated part is {_show(rot)} and the passed part {_show(rest)}: not x[..., :R] and x[..., R:]"
    why = why_not_rotary(q.type, m.rope.inputs[1].type, m.rope.inputs[2].type, m.il, w)
    return f"%{q.name} rotating {w} of {d} dims: {why}" if why else None


def _partial(rw, m):
    attrs = {"rotary_embedding_dim": len(slice_indices(m.rot))}
    if m.il:
        attrs["interleaved"] = 1
    return rw.op(ROTARY, [m.q, m.rope.inputs[1], m.rope.inputs[2]], attrs, domain=DOMAIN, name=m.out.name).output


Q = Var("q", _x)
rules.add("partial", "cat(RotaryEmbedding(x[..., :R], cos, sin), x[..., R:]) -> RotaryEmbedding(x, cos, sin, "
          "rotary_embedding_dim=R)",
          Op("Concat", Op(ROTARY, _slice("rot", Q), Var(), Var(), domain=DOMAIN, name="rope", rotary_embedding_dim=0,
                          interleaved=Bind("il")),
             _slice("rest", Q), name="out", axis=Bind("axis")), _partial, where=_partial_fits)


@register_pass
@dataclass
class FuseRotary(Pass):
    name = "fuse-rotary"
    summary = "fuse rotary position embeddings (rotate_half, GPT-J pairs, a partial rotary width) into " \
              "graphopt.RotaryEmbedding (exact)"

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        return apply_rules(graph, ctx, rules.rules)
