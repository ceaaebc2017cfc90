"""util.memory: after a compile the freed heap goes back to the system (glibc's
malloc_trim), so a compiled model's process is not left at the compile's peak."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from graphopt.util import memory


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 1e6


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim is Linux's")
def test_freed_small_blocks_go_back_to_the_system():
    assert memory._trim() is not None
    # many small arrays: malloc serves them from its arena (not mmap), so freeing them
    # alone leaves the process at its peak
    blocks = [np.ones(8192, np.uint8) for _ in range(40_000)]  # ~330 MB
    del blocks[::2]
    held = _rss_mb()
    del blocks
    memory.release_free_memory()
    assert _rss_mb() < held - 100, (held, _rss_mb())


def test_compile_model_gives_memory_back():
    from graphopt.compiler import compile_model

    assert compile_model.__wrapped__.__name__ == "compile_model"
