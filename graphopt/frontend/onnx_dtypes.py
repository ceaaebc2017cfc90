"""ONNX TensorProto element types <-> graphopt DType."""

from __future__ import annotations

from onnx import TensorProto

from ..ir import DType

TO_ONNX = {
    DType.FLOAT32: TensorProto.FLOAT, DType.FLOAT16: TensorProto.FLOAT16, DType.BFLOAT16: TensorProto.BFLOAT16,
    DType.FLOAT64: TensorProto.DOUBLE, DType.INT8: TensorProto.INT8, DType.INT16: TensorProto.INT16,
    DType.INT32: TensorProto.INT32, DType.INT64: TensorProto.INT64, DType.UINT8: TensorProto.UINT8,
    DType.UINT16: TensorProto.UINT16, DType.UINT32: TensorProto.UINT32, DType.UINT64: TensorProto.UINT64,
    DType.BOOL: TensorProto.BOOL, DType.STRING: TensorProto.STRING,
}
FROM_ONNX = {v: k for k, v in TO_ONNX.items()}


def dtype_from_onnx(elem_type: int, what: str) -> DType:
    try:
        return FROM_ONNX[elem_type]
    except KeyError:
        name = TensorProto.DataType.Name(elem_type) if elem_type in TensorProto.DataType.values() else str(elem_type)
        raise ValueError(f"{what}: element type {name} is not supported") from None
