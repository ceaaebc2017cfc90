"""Constant tensor payloads: initializers and tensor-valued attributes.

Data is a numpy array (bf16 as raw uint16 bits, since numpy has no bfloat16; int4/uint4
one element an int8/uint8 byte, in range), except for constants parsed back from an elided
dump, which keep only their type and digest: such a graph prints and verifies, but cannot
run or export.
"""

from __future__ import annotations

import hashlib
from typing import Optional

import numpy as np

from .types import DType, TensorType


class ElidedDataError(ValueError):
    """Raised when code needs the values of a constant that a dump elided."""


class TensorData:
    __slots__ = ("dtype", "shape", "_array", "_digest")

    def __init__(self, array: Optional[np.ndarray], dtype: DType, shape=None, digest: Optional[str] = None):
        self.dtype = dtype
        if array is not None:
            array = np.asarray(array)
            if dtype is DType.BFLOAT16:
                array = array.astype(np.uint16, copy=False)
            elif dtype is DType.STRING:
                array = array.astype(object, copy=False)
            elif array.dtype != dtype.numpy:
                raise TypeError(f"array of {array.dtype} given for a {dtype.short} tensor")
            elif dtype.is_4bit and array.size:
                lo, hi = dtype.int_range
                if array.min() < lo or array.max() > hi:
                    raise ValueError(f"a {dtype.short} tensor holds {int(array.min())}..{int(array.max())}, "
                                     f"outside {lo}..{hi}")
            self.shape = tuple(int(d) for d in array.shape)
        else:
            if shape is None or digest is None:
                raise ValueError("an elided tensor needs its shape and digest")
            self.shape = tuple(shape)
        self._array = array
        self._digest = digest

    @staticmethod
    def from_numpy(array) -> "TensorData":
        array = np.asarray(array)
        return TensorData(array, DType.from_numpy(array.dtype))

    @property
    def type(self) -> TensorType:
        return TensorType(self.dtype, self.shape)

    @property
    def is_elided(self) -> bool:
        return self._array is None

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    def numpy(self) -> np.ndarray:
        if self._array is None:
            raise ElidedDataError(
                f"constant data was elided in the dump it was parsed from (digest {self._digest})")
        return self._array

    @property
    def digest(self) -> str:
        """A stable content digest: dtype, shape and bytes."""
        if self._digest is None:
            h = hashlib.sha256()
            h.update(f"{self.dtype.short}{list(self.shape)}".encode())
            if self.dtype is DType.STRING:
                for s in self._array.reshape(-1):
                    b = s if isinstance(s, bytes) else str(s).encode()
                    h.update(len(b).to_bytes(8, "little") + b)
            else:
                h.update(np.ascontiguousarray(self._array).tobytes())
            self._digest = h.hexdigest()[:16]
        return self._digest

    def equals(self, other: "TensorData") -> bool:
        if self.dtype is not other.dtype or self.shape != other.shape:
            return False
        if self.is_elided or other.is_elided:
            return self.digest == other.digest
        return bool(np.array_equal(self._array, other._array, equal_nan=self.dtype.is_float))

    def __repr__(self) -> str:
        return f"TensorData({self.type}, digest={self.digest})"
