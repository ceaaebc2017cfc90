"""Groups of dtypes the op schemas accept (the dtype table itself is `graphopt.ir.DType`)."""

from __future__ import annotations

from ...ir.types import DType

FLOATS = frozenset(d for d in DType if d.is_float)
# int4/uint4 are storage for quantized data (DequantizeLinear reads them), not arithmetic types
INTS = frozenset(d for d in DType if d.is_int and not d.is_4bit)
SIGNED = frozenset(d for d in DType if d.is_signed_int and not d.is_4bit) | FLOATS
NUMERIC = FLOATS | INTS
ALL = frozenset(DType)

