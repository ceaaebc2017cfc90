"""A call's arguments bound to the model's inputs and checked against them (count, names,
dtype, rank, shape, symbolic dims agreeing across inputs); every mismatch is an InputError
naming the input."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import GraphoptError


class InputError(GraphoptError, ValueError):
    """Inputs that do not match the compiled model (wrong count, name, rank, shape, dtype)."""


def bind_inputs(specs: list, args, kwargs) -> list[np.ndarray]:
    """The arrays of a call (positional in the model's input order, or by name), checked
    against ``specs`` (the manifest's inputs), native byte order and C-contiguous."""
    names = [s["name"] for s in specs]
    if len(args) > len(specs):
        raise InputError(f"the model takes {len(specs)} input(s) ({', '.join(names)}), {len(args)} given")
    given: dict[str, Any] = {}
    for s, a in zip(specs, args):
        given[s["name"]] = a
    for k, v in kwargs.items():
        if k not in names:
            raise InputError(f"unknown input {k!r}; the model's inputs are: {', '.join(names)}")
        if k in given:
            raise InputError(f"input {k!r} given twice (positionally and by name)")
        given[k] = v
    missing = [n for n in names if n not in given]
    if missing:
        raise InputError(f"missing input(s): {', '.join(repr(m) for m in missing)}")
    symbols: dict[str, tuple[int, str]] = {}
    out = []
    for s in specs:
        name = s["name"]
        a = given[name]
        if hasattr(a, "detach") and hasattr(a, "numpy"):  # a torch tensor
            a = a.detach().cpu().numpy()
        if not isinstance(a, np.ndarray):
            a = as_array(name, a)
        check_input(s, a.dtype.name, tuple(a.shape), symbols)
        if not a.dtype.isnative:  # a big-endian .npy: TVM reads native byte order only
            a = a.astype(a.dtype.newbyteorder("="), order="C")
        out.append(a if a.flags.c_contiguous else np.array(a, order="C"))
    return out


def as_array(name: str, a) -> np.ndarray:
    """A Python scalar or (nested) list as an array; anything else is the caller's error."""
    if not (np.isscalar(a) or isinstance(a, (list, tuple))):
        raise InputError(f"input {name!r}: expected a numpy array, got {type(a).__name__}")
    try:
        return np.asarray(a)
    except (ValueError, TypeError) as e:  # ragged nesting
        raise InputError(f"input {name!r}: not an array: {e}") from None


def check_input(spec: dict, dtype_name: str, shape: tuple, symbols: dict) -> None:
    """Raise InputError naming the input when its dtype or shape does not fit ``spec``;
    ``symbols`` carries the sizes symbolic dims took in earlier inputs."""
    name = spec["name"]
    if spec["dtype"] != "bfloat16" and dtype_name != spec["dtype"]:
        raise InputError(f"input {name!r}: expected dtype {spec['dtype']}, got {dtype_name}")
    want = spec["shape"]
    if want is None:
        return
    if len(shape) != len(want):
        raise InputError(f"input {name!r}: expected rank {len(want)} (shape {_fmt(want)}), "
                         f"got rank {len(shape)} (shape {list(shape)})")
    for i, (d, g) in enumerate(zip(want, shape)):
        if isinstance(d, int):
            if d != g:
                raise InputError(f"input {name!r}: expected shape {_fmt(want)}, got {list(shape)} "
                                 f"(dim {i} is {g}, expected {d})")
        else:
            prev = symbols.get(d)
            if prev is not None and prev[0] != g:
                raise InputError(f"input {name!r}: dim {i} ({d}) is {g}, but input {prev[1]!r} has {d} = {prev[0]}")
            symbols[d] = (g, name)


def _fmt(shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"
