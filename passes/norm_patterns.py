"""Pattern pieces the normalization fusions share (fuse-layer-norm, fuse-rms-norm): the
float tensor being normalized, scalar constants, and the check that a mean reduces the
trailing axes. Not a pass."""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from graphopt.ir import DType
from graphopt.rewrite import Var


def float_tensor(name: str) -> Var:
    """A float32/float64 value of known rank (what the fused norms take)."""
    return Var(name, lambda v: None if v.type.dtype in (DType.FLOAT32, DType.FLOAT64) and v.type.shape is not None
               else f"%{v.name} is {v.type.dtype.short}{'' if v.type.shape is not None else ' of unknown rank'}, "
                    "not a float32/float64 tensor of known rank")


def scalar(value: float) -> Callable[[np.ndarray], Optional[str]]:
    """A constant predicate: one element equal to ``value``."""
    def check(a: np.ndarray) -> Optional[str]:
        return None if a.size == 1 and float(a.reshape(-1)[0]) == value else f"is not {value:g}"

    return check


def positive_scalar(a: np.ndarray) -> Optional[str]:
    """A constant predicate: one positive float (an epsilon)."""
    if a.dtype.kind != "f" or a.size != 1:
        return "is not a float scalar"
    v = float(a.reshape(-1)[0])
    return None if v > 0 else f"is {v:.6g}, not positive"


def reduced_axes(m, x: str, axes: str) -> list:
    """The axes (counted from the front) match binding ``axes`` reduces over ``m[x]``."""
    rank = len(m[x].type.shape)
    return sorted(int(a) % rank for a in m.array(axes).reshape(-1))


def trailing_axes(m, x: str, axes: str, mean: str) -> Optional[str]:
    """None when the ReduceMean bound as ``mean`` reduces the last axes of ``m[x]`` and
    those dims are known; else why not."""
    shape = m[x].type.shape
    got = reduced_axes(m, x, axes)
    if not got or got != list(range(got[0], len(shape))):
        return f"ReduceMean {m[mean].name!r} reduces axes {got}, not the last ones of a rank-{len(shape)} input"
    if not all(isinstance(d, int) for d in shape[got[0]:]):
        return f"the normalized dims {list(shape[got[0]:])} are not all known"
    return None
