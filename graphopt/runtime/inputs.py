"""A call's arguments bound to the model's inputs and checked against them (count, names,
dtype, rank, shape, symbolic dims agreeing across inputs); every mismatch is an InputError
naming the input.

The specs are precomputed once per model (`InputSpec`): a call whose arguments are numpy
arrays of exactly the expected dtype and static shape is checked with two comparisons per
input; anything else (torch tensors, lists, scalars, big-endian arrays, symbolic dims, and
every wrong input) takes the general path, which gives the same answers and the errors."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ..errors import GraphoptError


class InputError(GraphoptError, ValueError):
    """Inputs that do not match the compiled model (wrong count, name, rank, shape, dtype)."""


class InputSpec:
    """One model input as the manifest records it, with what a call compares against:
    the numpy dtype (None for bfloat16, which numpy lacks: any dtype is taken there, as the
    manifest's name check always did) and, when the dtype is numpy's and every dim is
    static, the shape as a tuple."""

    __slots__ = ("spec", "name", "dtype", "static_shape")

    def __init__(self, spec: dict):
        self.spec = spec
        self.name: str = spec["name"]
        self.dtype: Optional[np.dtype] = None if spec["dtype"] == "bfloat16" else np.dtype(spec["dtype"])
        dims = spec["shape"]
        static = self.dtype is not None and dims is not None and all(isinstance(d, int) for d in dims)
        self.static_shape: Optional[tuple] = tuple(dims) if static else None


def input_specs(specs: list) -> list[InputSpec]:
    return [InputSpec(s) for s in specs]


def bind_inputs(specs: list[InputSpec], args, kwargs) -> list:
    """The arrays of a call (positional in the model's input order, or by name), checked
    against ``specs``, in native byte order. They may still be strided or read-only: each
    stage copies what it cannot read in place."""
    given = args if not kwargs and len(args) == len(specs) else _by_name(specs, args, kwargs)
    out = []
    symbols: Optional[dict] = None
    for s, a in zip(specs, given):
        # the common call: exactly the dtype and static shape the model takes
        if type(a) is np.ndarray and a.shape == s.static_shape and a.dtype == s.dtype:
            out.append(a)
            continue
        if symbols is None:
            symbols = {}
        out.append(_checked(s, a, symbols))
    return out


def _by_name(specs: list[InputSpec], args, kwargs) -> list:
    names = [s.name for s in specs]
    if len(args) > len(specs):
        raise InputError(f"the model takes {len(specs)} input(s) ({', '.join(names)}), {len(args)} given")
    given: dict[str, Any] = dict(zip(names, args))
    for k, v in kwargs.items():
        if k not in names:
            raise InputError(f"unknown input {k!r}; the model's inputs are: {', '.join(names)}")
        if k in given:
            raise InputError(f"input {k!r} given twice (positionally and by name)")
        given[k] = v
    missing = [n for n in names if n not in given]
    if missing:
        raise InputError(f"missing input(s): {', '.join(repr(m) for m in missing)}")
    return [given[n] for n in names]


def _checked(s: InputSpec, a, symbols: dict) -> np.ndarray:
    if hasattr(a, "detach") and hasattr(a, "numpy"):  # a torch tensor
        a = a.detach().cpu().numpy()
    if not isinstance(a, np.ndarray):
        a = as_array(s.name, a)
    check_input(s.spec, a.dtype.name, tuple(a.shape), symbols)
    if not a.dtype.isnative:  # a big-endian .npy: TVM and onnxruntime read native order only
        a = a.astype(a.dtype.newbyteorder("="), order="C")
    return a


def native_contiguous(a: np.ndarray) -> np.ndarray:
    """``a`` in native byte order and C order (itself when it already is): what onnxruntime
    and a copy into TVM read."""
    if not a.dtype.isnative:  # a big-endian .npy
        return a.astype(a.dtype.newbyteorder("="), order="C")
    # (np.ascontiguousarray would make a 0-d array 1-d)
    return a if a.flags.c_contiguous else np.array(a, order="C")


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
