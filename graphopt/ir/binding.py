"""Resolving a shape binding against a graph: input shapes (``--shape ids=1x128``,
``shapes={"ids": (1, 128)}``) and symbol sizes (``--dim seq=128``) checked against the
graph's inputs and turned into one size per symbol, or a `ShapeBindingError` naming the
input and the dim that contradict the model.

Only the symbols of the graph's own inputs can be bound: every other symbol is derived
from them (or from data), so a size given for it could disagree with what it stands for.
"""

from __future__ import annotations

from typing import Iterable, Mapping, Optional, Sequence

import numpy as np

from ..errors import ShapeBindingError
from .graph import Graph


def input_dims(graph: Graph) -> list[str]:
    """The symbolic dims of the graph's inputs, in order of first appearance."""
    seen: dict[str, None] = {}
    for v in graph.inputs:
        for d in v.type.shape or ():
            if isinstance(d, str):
                seen.setdefault(d, None)
    return list(seen)


def parse_shape(text: str, what: str) -> tuple[int, ...]:
    """``"1x3x224x224"`` -> (1, 3, 224, 224); ``""`` or ``"scalar"`` -> () (a scalar input)."""
    text = text.strip()
    if text in ("", "scalar"):
        return ()
    try:
        return tuple(int(p) for p in text.lower().split("x"))
    except ValueError:
        raise ShapeBindingError(f"{what}: bad shape {text!r} (sizes separated by 'x', e.g. 1x3x224x224)") from None


def parse_assignments(items: Iterable[str], what: str, sep: str = "=") -> dict[str, str]:
    """``["a=1", "b=2"]`` -> {"a": "1", "b": "2"}; the same name twice with different
    values is an error (the name is split off at the last ``sep``)."""
    out: dict[str, str] = {}
    for item in items:
        if sep not in item:
            raise ShapeBindingError(f"bad {what} {item!r}: use NAME{sep}VALUE")
        name, val = (s.strip() for s in item.rsplit(sep, 1))
        if not name:
            raise ShapeBindingError(f"bad {what} {item!r}: the name is empty")
        if name in out and out[name] != val:
            raise ShapeBindingError(f"{what} {name!r} is given twice: {out[name]} and {val}")
        out[name] = val
    return out


def _size(v, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise ShapeBindingError(f"{what}: size {v!r} is not an integer")
    if v <= 0:
        raise ShapeBindingError(f"{what}: size {v} is not positive")
    return int(v)


def _listing(names: Sequence[str], none: str) -> str:
    return ", ".join(names) if names else none


def resolve_binding(graph: Graph, shapes: Optional[Mapping[str, Sequence[int]]] = None,
                    dims: Optional[Mapping[str, int]] = None, *, where: str = "",
                    ignore_unknown_dims: bool = False) -> dict[str, int]:
    """One size per symbol of the graph's inputs that ``shapes`` (by input name) and
    ``dims`` (by symbol) bind. Raises ShapeBindingError, naming the input and dim, for an
    unknown input, a wrong rank, a dim the model fixes to another size, a size that is
    not positive, an unknown dim name (listing the dims there are; skipped with
    ``ignore_unknown_dims``, for a graph specialized before) and two sizes for one dim."""
    pre = f"{where}: " if where else ""
    out: dict[str, int] = {}
    source: dict[str, str] = {}
    for name, shape in (shapes or {}).items():
        v = next((x for x in graph.inputs if x.name == name), None)
        if v is None:
            names = [x.name for x in graph.inputs]
            raise ShapeBindingError(f"{pre}shape for input {name!r}: the model has no such input "
                                    f"(inputs: {_listing(names, 'none')})")
        shape = tuple(shape)
        given = "x".join(str(s) for s in shape) or "scalar"
        declared = v.type.shape
        if declared is None:
            raise ShapeBindingError(f"{pre}input {name!r}: its rank is unknown ({v.type}); only inputs of known "
                                    "rank can be bound")
        if len(shape) != len(declared):
            raise ShapeBindingError(f"{pre}input {name!r}: shape {given} has rank {len(shape)}, the input is "
                                    f"{v.type} (rank {len(declared)})")
        for axis, (d, s) in enumerate(zip(declared, shape)):
            s = _size(s, f"{pre}input {name!r} dim {axis}")
            if isinstance(d, int):
                if d != s:
                    raise ShapeBindingError(f"{pre}input {name!r}: dim {axis} is {d} in the model ({v.type}), "
                                            f"the shape {given} gives {s}")
            elif d in out and out[d] != s:
                raise ShapeBindingError(f"{pre}dim {d!r}: {source[d]} gives {out[d]}, input {name!r} dim {axis} "
                                        f"gives {s}")
            else:
                out[d], source[d] = s, f"input {name!r} dim {axis}"
    known = input_dims(graph)
    for sym, size in (dims or {}).items():
        size = _size(size, f"{pre}dim {sym!r}")
        if sym not in known:
            if ignore_unknown_dims:
                continue
            raise ShapeBindingError(f"{pre}dim {sym!r}: no input of the model has it (dims: "
                                    f"{_listing(known, 'none, every input shape is static')})")
        if sym in out and out[sym] != size:
            raise ShapeBindingError(f"{pre}dim {sym!r}: the dim binding gives {size}, the shape of "
                                    f"{source[sym]} gives {out[sym]}")
        out[sym] = size
    return out


def shape_binding(graph: Graph, shapes: Optional[Mapping[str, Sequence[int]]] = None,
                  dims: Optional[Mapping[str, int]] = None, example_inputs=None, where: str = "") -> dict[str, int]:
    """The sizes of ``graph``'s symbolic input dims that ``shapes`` (by input name),
    ``dims`` (by symbol) and the shapes of ``example_inputs`` (arrays by input name, or in
    input order) bind; a ShapeBindingError naming the input and dim for one that
    contradicts the model (`resolve_binding`)."""
    merged = {k: tuple(v) for k, v in (shapes or {}).items()}
    if example_inputs is not None:
        if isinstance(example_inputs, Mapping):
            named = dict(example_inputs)
        else:
            arrays = list(example_inputs)
            if len(arrays) > len(graph.inputs):
                raise ShapeBindingError(f"{where + ': ' if where else ''}{len(arrays)} example inputs for a model "
                                        f"of {len(graph.inputs)} inputs ({', '.join(v.name for v in graph.inputs)})")
            named = {v.name: a for v, a in zip(graph.inputs, arrays)}
        for name, a in named.items():
            shape = tuple(int(s) for s in (a.shape if hasattr(a, "shape") else np.shape(a)))
            if name in merged and merged[name] != shape:
                raise ShapeBindingError(f"{where + ': ' if where else ''}input {name!r}: shapes= gives "
                                        f"{list(merged[name])}, its example input is {list(shape)}")
            merged[name] = shape
    return resolve_binding(graph, merged, dims, where=where)


# ---------------------------------------------------------------------------- pass options
# A pipeline spec carries a binding as text: ``dims=batch:1;seq:128``,
# ``shapes=input_ids:1x128;mask:1x128`` (``,`` separates a spec's options, ``=`` an
# option from its value, so entries use ``;`` and ``:``).


def _entries(text: str, what: str) -> list[tuple[str, str]]:
    out = []
    for item in (t.strip() for t in text.split(";")):
        if not item:
            continue
        if ":" not in item:
            raise ShapeBindingError(f"bad {what} entry {item!r}: use NAME:VALUE, entries separated by ';'")
        name, val = item.rsplit(":", 1)
        out.append((name.strip(), val.strip()))
    return out


def parse_dims_option(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for name, val in _entries(text, "dims"):
        try:
            size = int(val)
        except ValueError:
            raise ShapeBindingError(f"dim {name!r}: size {val!r} is not an integer") from None
        if name in out and out[name] != size:
            raise ShapeBindingError(f"dim {name!r} is given twice: {out[name]} and {size}")
        out[name] = size
    return out


def parse_shapes_option(text: str) -> dict[str, tuple[int, ...]]:
    out: dict[str, tuple[int, ...]] = {}
    for name, val in _entries(text, "shapes"):
        shape = parse_shape(val, f"input {name!r}")
        if name in out and out[name] != shape:
            raise ShapeBindingError(f"input {name!r} is given two shapes")
        out[name] = shape
    return out


def _check_name(name: str, what: str) -> str:
    if any(c in name for c in ";,{}()"):
        raise ShapeBindingError(f"{what} {name!r} cannot be written in a pipeline spec (it holds one of ; , {{ }} ( ))")
    return name


def format_dims(dims: Mapping[str, int]) -> str:
    return ";".join(f"{_check_name(k, 'dim')}:{int(v)}" for k, v in dims.items())


def format_shapes(shapes: Mapping[str, Sequence[int]]) -> str:
    return ";".join(f"{_check_name(k, 'input')}:{'x'.join(str(int(s)) for s in v) or 'scalar'}" for k, v in shapes.items())
