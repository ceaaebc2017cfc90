"""The user-facing error for an ONNX element type graphopt does not support (the table
itself is `graphopt.ir.DType`: ``DType.onnx``, ``DType.from_onnx``)."""

from __future__ import annotations

from onnx import TensorProto

from ..ir import DType


def dtype_from_onnx(elem_type: int, what: str) -> DType:
    try:
        return DType.from_onnx(elem_type)
    except ValueError:
        name = TensorProto.DataType.Name(elem_type) if elem_type in TensorProto.DataType.values() else str(elem_type)
        raise ValueError(f"{what}: element type {name} is not supported") from None
