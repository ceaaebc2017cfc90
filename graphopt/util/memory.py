"""Giving freed heap back to the system. A compile frees gigabytes (the ONNX model, IR
constants, TVM's copies of the weights while it builds), but glibc's allocator keeps freed
memory in its arenas, so the process stays at its peak size: BERT-base sat at 1.75 GB
resident after compiling, 0.96 GB after ``malloc_trim``."""

from __future__ import annotations

import ctypes
import functools
import gc
import sys


@functools.lru_cache(maxsize=None)
def _trim():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        return None


def release_free_memory() -> None:
    """Collect garbage and return the allocator's free pages to the system (glibc only;
    elsewhere a no-op)."""
    gc.collect()
    trim = _trim()
    if trim is not None:
        trim(0)
