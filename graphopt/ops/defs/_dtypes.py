"""ONNX TensorProto element-type ints <-> graphopt DType (no onnx import at runtime)."""

from __future__ import annotations

from ...ir.types import DType

ONNX_TO_DTYPE: dict[int, DType] = {
    1: DType.FLOAT32, 2: DType.UINT8, 3: DType.INT8, 4: DType.UINT16, 5: DType.INT16, 6: DType.INT32,
    7: DType.INT64, 8: DType.STRING, 9: DType.BOOL, 10: DType.FLOAT16, 11: DType.FLOAT64, 12: DType.UINT32,
    13: DType.UINT64, 16: DType.BFLOAT16,
}
DTYPE_TO_ONNX: dict[DType, int] = {v: k for k, v in ONNX_TO_DTYPE.items()}

FLOATS = frozenset(d for d in DType if d.is_float)
INTS = frozenset(d for d in DType if d.is_int)
SIGNED = frozenset(d for d in DType if d.is_signed_int) | FLOATS
NUMERIC = FLOATS | INTS
ALL = frozenset(DType)


def dtype_from_onnx(code: int) -> DType:
    """The DType of an ONNX TensorProto element-type int (ValueError if unsupported)."""
    try:
        return ONNX_TO_DTYPE[int(code)]
    except KeyError:
        raise ValueError(f"ONNX element type {code} is not supported") from None
