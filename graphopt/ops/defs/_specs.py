"""Shorthands the op definitions share: dtype sets by short names, typed attribute specs."""

from __future__ import annotations

from ...ir import AttrKind
from ...ir.types import DType
from ..registry import AttrSpec


def types(spec: str) -> frozenset:
    """The dtypes a space-separated list of short names ("f16 f32") names."""
    return frozenset(DType.parse(s) for s in spec.split())


F = types("bf16 f16 f32 f64")
F3 = types("f16 f32 f64")
SINT = types("i8 i16 i32 i64")
UINT = types("u8 u16 u32 u64")
INT = SINT | UINT
NUM = F | INT
ANY = frozenset(DType)
BOOL = frozenset({DType.BOOL})


def float_attr(v: float) -> AttrSpec:
    return AttrSpec(AttrKind.FLOAT, v)


def int_attr(v: int) -> AttrSpec:
    return AttrSpec(AttrKind.INT, v)
