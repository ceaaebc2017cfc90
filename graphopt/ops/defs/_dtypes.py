"""Groups of dtypes the op schemas accept (the dtype table itself is `graphopt.ir.DType`)."""

from __future__ import annotations

from ...ir.types import DType

FLOATS = frozenset(d for d in DType if d.is_float)
INTS = frozenset(d for d in DType if d.is_int)
SIGNED = frozenset(d for d in DType if d.is_signed_int) | FLOATS
NUMERIC = FLOATS | INTS
ALL = frozenset(DType)

