"""Element types, dimensions and tensor types of graphopt's IR.

A dimension is an ``int`` (static) or a ``str`` (a named symbol such as ``"batch"``).
A shape of ``None`` means the rank itself is unknown; that only happens for values whose
producer's output rank depends on data (e.g. a Reshape with a computed shape).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Optional, Union

import numpy as np

Dim = Union[int, str]
Shape = Optional[tuple[Dim, ...]]


class DType(enum.Enum):
    """Element types. ``value`` is the short name used by the text form."""

    FLOAT32 = "f32"
    FLOAT16 = "f16"
    BFLOAT16 = "bf16"
    FLOAT64 = "f64"
    INT4 = "i4"
    INT8 = "i8"
    INT16 = "i16"
    INT32 = "i32"
    INT64 = "i64"
    UINT4 = "u4"
    UINT8 = "u8"
    UINT16 = "u16"
    UINT32 = "u32"
    UINT64 = "u64"
    BOOL = "bool"
    STRING = "str"

    @property
    def short(self) -> str:
        return self.value

    @property
    def is_float(self) -> bool:
        return self in (DType.FLOAT32, DType.FLOAT16, DType.BFLOAT16, DType.FLOAT64)

    @property
    def is_int(self) -> bool:
        return self.value[0] in "iu"

    @property
    def is_signed_int(self) -> bool:
        return self.value[0] == "i"

    @property
    def is_4bit(self) -> bool:
        """int4/uint4: held one element a byte (int8/uint8) in graphopt, two a byte in ONNX."""
        return self in (DType.INT4, DType.UINT4)

    @property
    def int_range(self) -> tuple[int, int]:
        """The smallest and largest value of an integer type (int4: -8..7, uint4: 0..15)."""
        if self is DType.INT4:
            return -8, 7
        if self is DType.UINT4:
            return 0, 15
        info = np.iinfo(np.uint16 if self is DType.BFLOAT16 else self.numpy)
        return int(info.min), int(info.max)

    @property
    def numpy(self) -> np.dtype:
        if self is DType.BFLOAT16:
            raise TypeError("numpy has no bfloat16; graphopt stores bf16 constants as raw uint16")
        return np.dtype(_TO_NUMPY[self])

    @staticmethod
    def from_numpy(dt) -> "DType":
        dt = np.dtype(dt)
        if dt.kind in "OUS":
            return DType.STRING
        try:
            return _FROM_NUMPY[dt]
        except KeyError:
            raise TypeError(f"numpy dtype {dt} has no graphopt DType") from None

    @property
    def onnx(self) -> int:
        """The ONNX TensorProto element-type code."""
        return _TABLE[self][1]

    @staticmethod
    def from_onnx(code: int) -> "DType":
        """The DType of an ONNX element-type code; ValueError naming it if unsupported."""
        try:
            return _FROM_ONNX[int(code)]
        except KeyError:
            raise ValueError(f"ONNX element type {code} is not supported") from None

    @property
    def tvm(self) -> Optional[str]:
        """The TVM dtype name; None for a type TVM cannot hold (strings)."""
        return _TABLE[self][2]

    @staticmethod
    def parse(short: str) -> "DType":
        try:
            return _BY_SHORT[short]
        except KeyError:
            raise ValueError(f"unknown dtype {short!r}; expected one of {sorted(_BY_SHORT)}") from None

    def __repr__(self) -> str:
        return f"DType.{self.name}"


# The one dtype table: for each DType its numpy type, ONNX TensorProto element-type code
# and TVM dtype name (plain ints and strings, so ir imports neither onnx nor tvm). A new
# element type is one row here. int4/uint4 are held and computed as int8/uint8 (numpy and
# TVM), their values in range; only ONNX packs them two a byte.
_TABLE: dict[DType, tuple[object, int, Optional[str]]] = {
    #                  numpy       onnx  tvm
    DType.FLOAT32:  (np.float32,   1,   "float32"),
    DType.UINT8:    (np.uint8,     2,   "uint8"),
    DType.INT8:     (np.int8,      3,   "int8"),
    DType.UINT16:   (np.uint16,    4,   "uint16"),
    DType.INT16:    (np.int16,     5,   "int16"),
    DType.INT32:    (np.int32,     6,   "int32"),
    DType.INT64:    (np.int64,     7,   "int64"),
    DType.STRING:   (np.object_,   8,   None),
    DType.BOOL:     (np.bool_,     9,   "bool"),
    DType.FLOAT16:  (np.float16,   10,  "float16"),
    DType.FLOAT64:  (np.float64,   11,  "float64"),
    DType.UINT32:   (np.uint32,    12,  "uint32"),
    DType.UINT64:   (np.uint64,    13,  "uint64"),
    DType.BFLOAT16: (None,         16,  "bfloat16"),
    DType.UINT4:    (np.uint8,     21,  "uint8"),
    DType.INT4:     (np.int8,      22,  "int8"),
}
_TO_NUMPY = {d: row[0] for d, row in _TABLE.items() if row[0] is not None}
_FROM_NUMPY = {np.dtype(v): k for k, v in _TO_NUMPY.items() if k is not DType.STRING and not k.is_4bit}
_FROM_ONNX = {row[1]: d for d, row in _TABLE.items()}
_BY_SHORT = {d.value: d for d in DType}


def is_static(shape: Shape) -> bool:
    return shape is not None and all(isinstance(d, int) for d in shape)


def format_dim(d: Dim) -> str:
    return str(d)


@dataclass(frozen=True)
class TensorType:
    """The type of a value: element type and shape (ints and named symbols)."""

    dtype: DType
    shape: Shape

    def __post_init__(self):
        if self.shape is not None:
            object.__setattr__(self, "shape", tuple(self.shape))
            for d in self.shape:
                if isinstance(d, bool) or not isinstance(d, (int, str)):
                    raise TypeError(f"dimension {d!r} must be an int or a symbol name")
                if isinstance(d, int) and d < 0:
                    raise ValueError(f"dimension {d} is negative")
                if isinstance(d, str) and not d:
                    raise ValueError("a symbolic dimension needs a name")

    @property
    def rank(self) -> Optional[int]:
        return None if self.shape is None else len(self.shape)

    @property
    def is_static(self) -> bool:
        return is_static(self.shape)

    def numel(self) -> Optional[int]:
        if not self.is_static:
            return None
        n = 1
        for d in self.shape:  # type: ignore[union-attr]
            n *= d  # type: ignore[operator]
        return n

    def with_shape(self, shape: Shape) -> "TensorType":
        return TensorType(self.dtype, shape)

    def __str__(self) -> str:
        if self.shape is None:
            return f"{self.dtype.short}[...]"
        return f"{self.dtype.short}[{', '.join(format_dim(d) for d in self.shape)}]"


def shapes_compatible(a: Shape, b: Shape) -> bool:
    """True when nothing is known that makes the two shapes differ (symbols match anything)."""
    if a is None or b is None:
        return True
    if len(a) != len(b):
        return False
    return all(not (isinstance(x, int) and isinstance(y, int) and x != y) for x, y in zip(a, b))
