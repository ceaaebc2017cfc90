"""How exporters hand attention its keys and values, traced back to the heads tensors
(fuse-attention's view analysis; not a pass).

The scores matmul reads K^T [B, Hq, D, L] through a chain of views, and the output matmul
V [B, Hq, L, Dv]. torch.onnx spells ``k.transpose(-2, -1)`` as a Transpose, or (for
scaled_dot_product_attention) as Reshape to [B*Hq, L, D], Transpose(0, 2, 1), Reshape to
[B, Hq, D, L]; grouped-query models first repeat each K/V head (``repeat_kv``: Unsqueeze
at 2, Expand to [B, Hkv, rep, L, D], Reshape to [B, Hq, L, D], the last Reshape sometimes
merged into the flattening one). Each function returns the heads the chain starts from,
[B, Hkv, L, D] with the repeat factor, or a reason naming the view it cannot see through.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

import numpy as np

from graphopt.ir import Value


@dataclass
class Heads:
    """``value`` [B, Hkv, L, X], read by query head h as head h // ``rep``; when
    ``transpose`` is set, ``value`` is [B, L, Hkv, X] and needs Transpose(0, 2, 1, 3) first."""

    value: Value
    rep: int = 1
    transpose: bool = False


def _producer(v: Value, op: str):
    p = v.producer
    return p if p is not None and p.op_type == op and not p.domain else None


def _const_ints(v: Optional[Value]) -> Optional[list[int]]:
    if v is None or v.const is None or v.const.is_elided:
        return None
    return [int(x) for x in v.const.numpy().reshape(-1)]


def _static(v: Value) -> Optional[list[int]]:
    s = v.type.shape
    return list(s) if s is not None and all(isinstance(d, int) for d in s) else None


def _unrepeat(x: Value) -> Heads:
    """``x`` [B, Hq, L, X] or [B, Hkv, rep, L, X]: the heads before a repeat_kv, if any."""
    shape = _static(x)
    src = x
    if shape is not None and len(shape) == 4:
        r = _producer(x, "Reshape")
        if r is None:
            return Heads(x)
        src = r.inputs[0]
    e = _producer(src, "Expand")
    u = _producer(e.inputs[0], "Unsqueeze") if e is not None else None
    if u is None or _const_ints(u.inputs[1]) not in ([2], [-3]):
        return Heads(x)
    k0, es = u.inputs[0], _static(e.outputs[0])
    ks = _static(k0)
    if ks is None or es is None or len(ks) != 4 or len(es) != 5 or es[:2] + es[3:] != ks:
        return Heads(x)
    return Heads(k0, es[2])


def keys_of(kt: Value) -> Union[Heads, str]:
    """The keys behind ``kt`` = K^T [B, Hq, D, L]."""
    shape = _static(kt)
    if shape is None or len(shape) != 4:
        return f"K^T %{kt.name} is not a 4-D tensor of known shape"
    t = _producer(kt, "Transpose")
    if t is not None:
        perm = list(t.attr("perm", []) or [])
        if perm == [0, 1, 3, 2]:
            return _unrepeat(t.inputs[0])
        if perm == [0, 2, 3, 1]:
            return Heads(t.inputs[0], 1, transpose=True)
        return f"K^T %{kt.name} is a Transpose with perm {perm}, not [0, 1, 3, 2] or [0, 2, 3, 1]"
    r2 = _producer(kt, "Reshape")
    t = _producer(r2.inputs[0], "Transpose") if r2 is not None else None
    r1 = _producer(t.inputs[0], "Reshape") if t is not None else None
    if r1 is None:
        p = kt.producer
        return f"K^T %{kt.name} comes from {p.op_type if p is not None else 'outside'}, not a transpose of K"
    if list(t.attr("perm", []) or []) != [0, 2, 1]:
        return f"the keys' Transpose {t.name!r} has perm {list(t.attr('perm', []) or [])}, not [0, 2, 1]"
    b, hq, d, length = shape
    flat, x = _static(r1.outputs[0]), r1.inputs[0]
    xs = _static(x)
    if flat != [b * hq, length, d] or xs is None or xs[-2:] != [length, d] or int(np.prod(xs[:-2])) != b * hq:
        return (f"the keys' Reshape {r1.name!r} gives {flat} from {xs}, not the {b}x{hq} heads of [{length}, {d}] "
                "flattened")
    return _unrepeat(x)


def values_of(v: Value) -> Heads:
    """The values behind ``v`` [B, Hq, L, Dv]."""
    return _unrepeat(v)
