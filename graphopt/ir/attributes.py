"""Typed node attributes (ONNX's attribute kinds)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .tensor import TensorData

if TYPE_CHECKING:
    from .graph import Graph


class Region:
    """The base class of `Graph`: what a graph attribute holds. It lives here so that
    attributes can tell a graph from other values without importing graph.py, which
    imports attributes (a graph's nodes carry attributes that may hold graphs)."""

    __slots__ = ()


class AttrKind(enum.Enum):
    FLOAT = "float"
    INT = "int"
    STRING = "string"
    TENSOR = "tensor"
    GRAPH = "graph"
    FLOATS = "floats"
    INTS = "ints"
    STRINGS = "strings"


@dataclass(frozen=True)
class Attr:
    """One attribute value with its kind. Lists are stored as tuples (immutable)."""

    kind: AttrKind
    value: Any

    def __post_init__(self):
        k, v = self.kind, self.value
        if k is AttrKind.FLOAT:
            # ONNX float attributes are float32: store the float32 value so that printing
            # the shortest float32 repr and parsing it back gives the same attribute.
            object.__setattr__(self, "value", float(np.float32(v)))
        elif k is AttrKind.INT:
            if isinstance(v, bool) or int(v) != v:
                raise TypeError(f"int attribute given {v!r}")
            object.__setattr__(self, "value", int(v))
        elif k is AttrKind.STRING:
            if not isinstance(v, str):
                raise TypeError(f"string attribute given {v!r}")
        elif k is AttrKind.FLOATS:
            object.__setattr__(self, "value", tuple(float(np.float32(x)) for x in v))
        elif k is AttrKind.INTS:
            object.__setattr__(self, "value", tuple(int(x) for x in v))
        elif k is AttrKind.STRINGS:
            object.__setattr__(self, "value", tuple(str(x) for x in v))
        elif k is AttrKind.TENSOR:
            if not isinstance(v, TensorData):
                raise TypeError(f"tensor attribute given {type(v).__name__}")
        elif k is AttrKind.GRAPH:
            if not isinstance(v, Region):
                raise TypeError(f"graph attribute given {type(v).__name__}")

    @staticmethod
    def float(v) -> "Attr":
        return Attr(AttrKind.FLOAT, v)

    @staticmethod
    def int(v) -> "Attr":
        return Attr(AttrKind.INT, v)

    @staticmethod
    def string(v) -> "Attr":
        return Attr(AttrKind.STRING, v)

    @staticmethod
    def floats(v) -> "Attr":
        return Attr(AttrKind.FLOATS, v)

    @staticmethod
    def ints(v) -> "Attr":
        return Attr(AttrKind.INTS, v)

    @staticmethod
    def strings(v) -> "Attr":
        return Attr(AttrKind.STRINGS, v)

    @staticmethod
    def tensor(v: TensorData) -> "Attr":
        return Attr(AttrKind.TENSOR, v)

    @staticmethod
    def graph(v: "Graph") -> "Attr":
        return Attr(AttrKind.GRAPH, v)

    @staticmethod
    def infer(v) -> "Attr":
        """The kind a plain Python value most naturally has (used by builders and tests)."""
        if isinstance(v, Attr):
            return v
        if isinstance(v, bool):
            return Attr.int(int(v))
        if isinstance(v, int):
            return Attr.int(v)
        if isinstance(v, float):
            return Attr.float(v)
        if isinstance(v, str):
            return Attr.string(v)
        if isinstance(v, TensorData):
            return Attr.tensor(v)
        if isinstance(v, Region):
            return Attr.graph(v)
        if isinstance(v, (list, tuple)):
            if all(isinstance(x, int) and not isinstance(x, bool) for x in v):
                return Attr.ints(v)
            if all(isinstance(x, (int, float)) for x in v):
                return Attr.floats(v)
            if all(isinstance(x, str) for x in v):
                return Attr.strings(v)
        raise TypeError(f"cannot tell the attribute kind of {v!r}")
