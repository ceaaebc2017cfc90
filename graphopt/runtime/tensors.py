"""numpy arrays into TVM tensors and TVM's results back out, copying only where sharing
memory would be wrong.

Into TVM: a C-contiguous, native-order, writeable array whose data is 64-byte aligned is
passed in place (DLPack) unless it is small. TVM's kernels may assume that alignment (a misaligned input
crashed an elementwise kernel here), and most numpy arrays are only 16-byte aligned, so
everything else is copied into a staging buffer: one per input, allocated once (per
shape) and reused by every call, so the copy costs a memcpy and no allocation.

Out of TVM: the VM allocates each output afresh per call (its pooled allocator reuses a
buffer only after every reference to it is gone), so handing the caller a numpy view of it
is safe, except for an output that is not fresh: a VM constant, one output returned twice,
or a view of an input or a parameter. Those are copied."""

from __future__ import annotations

import ctypes
from typing import Optional

import numpy as np
from tvm_ffi import Tensor, from_dlpack

from .inputs import native_contiguous

ALIGN = 64                    # bytes; what TVM allocates with and its kernels may assume
STAGING_MAX = 1 << 20         # bytes; a bigger input gets a fresh buffer per call instead
# bytes; a smaller input is copied into its staging buffer without trying it in place: the
# copy costs less than the DLPack export and alignment check (most small arrays fail that
# check anyway), and an empty one must be copied (numpy gives it zero strides, which TVM's
# compact-layout check refuses)
COPY_BELOW = 4096
# References an output of the call holds when nothing else does: the caller's (ours) and
# the VM's own hold on the value it returned last (an Array's hold on its element, for a
# tuple of outputs). Anything more (a VM constant in its pool, an output returned twice)
# outlives the call. Measured on TVM 0.27; tests/runtime checks both sides.
FRESH_REFS = 2


def strong_refs(t) -> int:
    """The strong reference count of a TVM FFI object: the low 32 bits of the first field
    of its header (``TVMFFIObject.combined_ref_count``, TVM FFI's stable C ABI)."""
    return _u32.from_address(t.__chandle__()).value


_u32 = ctypes.c_uint32


def aligned_empty(shape: tuple, dtype: np.dtype):
    """(numpy array, TVM tensor) sharing one fresh, ALIGN-aligned buffer."""
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if not nbytes:  # an empty array: TVM's own, whose strides its layout check accepts
        import tvm

        tensor = tvm.runtime.empty(shape, dtype.name)
        return np.from_dlpack(tensor), tensor
    buf = np.empty(nbytes + ALIGN, np.uint8)
    off = -from_dlpack(buf).data_ptr() % ALIGN
    view = buf[off:off + nbytes].view(dtype).reshape(shape)
    return view, from_dlpack(view)


class Staging:
    """One input's reusable aligned buffer. Not thread-safe: its stage runs one call at a
    time."""

    __slots__ = ("shape", "dtype", "view", "tensor")

    def __init__(self):
        self.shape = self.dtype = self.view = self.tensor = None

    def copy_in(self, a: np.ndarray):
        """A TVM tensor holding a copy of ``a`` (native byte order, any layout)."""
        if a.shape != self.shape or a.dtype != self.dtype:
            view, tensor = aligned_empty(a.shape, a.dtype)
            if view.nbytes > STAGING_MAX:
                np.copyto(view, a)
                return tensor
            self.shape, self.dtype, self.view, self.tensor = a.shape, a.dtype, view, tensor
        np.copyto(self.view, a)
        return self.tensor


def to_tvm(a: np.ndarray, staging: Staging, plain: Optional[bool], copy: bool = False):
    """``a`` (native byte order) as a TVM tensor: in place where TVM can read it (unless
    ``copy``: for an input the compiled code writes), else copied into ``staging``.
    ``plain``: whether its dtype is one numpy exports by DLPack (None: look)."""
    if plain is None:
        plain = a.dtype.kind in "biuf"
    if not plain:  # bfloat16 (ml_dtypes): TVM's own conversion copies
        import tvm

        return tvm.runtime.tensor(native_contiguous(a))
    if copy or a.nbytes <= COPY_BELOW:
        return staging.copy_in(a)
    f = a.flags
    # (numpy's DLPack export refuses read-only arrays)
    if f.c_contiguous and f.writeable:
        t = from_dlpack(a)
        if t.data_ptr() % ALIGN == 0:
            return t
    return staging.copy_in(a)


def overlaps(ptr: int, end: int, ranges: list) -> bool:
    for lo, hi in ranges:
        if ptr < hi and lo < end:
            return True
    return False


def itemsize(dtype_name: str) -> int:
    return 2 if dtype_name == "bfloat16" else np.dtype(dtype_name).itemsize


def numpy_takes(dtype_name: Optional[str]) -> Optional[bool]:
    """Whether numpy can view a TVM tensor of that dtype (None: unknown until run)."""
    return None if dtype_name is None else dtype_name != "bfloat16"


def outputs_of(res) -> list:
    """A VM call's result as a list: a tensor, or an Array of them (several outputs)."""
    return [res] if isinstance(res, Tensor) else list(res)


def from_tvm(res, viewable: list, ranges: list) -> list[np.ndarray]:
    """A VM call's outputs (a tensor, or an Array of them when there are several) as numpy
    arrays the caller owns. ``viewable``: per output, `numpy_takes` of its dtype;
    ``ranges``: the (start, end) addresses of the call's inputs and parameters, which an
    output must not share (extended here with each output handed over)."""
    if isinstance(res, Tensor):
        return [_owned(res, viewable[0], ranges)]
    return [_owned(t, ok, ranges) for t, ok in zip(list(res), viewable)]


def _owned(t, ok: Optional[bool], ranges: list) -> np.ndarray:
    if ok is None:
        ok = t.dtype != "bfloat16"  # (t.dtype costs a microsecond: known dtypes come precomputed)
    if not ok:
        return t.numpy()  # numpy has no bfloat16: TVM's own conversion copies
    fresh = strong_refs(t) <= FRESH_REFS  # (before the view adds its own reference)
    a = np.from_dlpack(t)
    p = t.data_ptr()
    end = p + a.nbytes
    if not fresh or (end > p and overlaps(p, end, ranges)):
        return a.copy()
    ranges.append((p, end))
    return a


def owned_tensors(res, itemsizes: list, ranges: list) -> list:
    """A VM call's outputs as TVM tensors the caller owns (for DLPack consumers such as
    torch): a copy of any that is not fresh, as in `from_tvm`. ``itemsizes``: per output."""
    outs = [res] if isinstance(res, Tensor) else list(res)
    owned = []
    for t, size in zip(outs, itemsizes):
        p = t.data_ptr()
        end = p + t.numel() * size
        if strong_refs(t) > FRESH_REFS or (end > p and overlaps(p, end, ranges)):
            t = t.copyto(t.device)
        else:
            ranges.append((p, end))
        owned.append(t)
    return owned
