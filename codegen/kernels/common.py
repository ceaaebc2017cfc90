"""What the packed kernels share: the host's vector width and the output-channel block."""

from __future__ import annotations


def vector_lanes() -> int:
    """float32 lanes of the host CPU's widest vector unit."""
    from ..target import host_cpu

    return host_cpu().vector_lanes


def pick_block(n: int, lanes: int) -> int:
    """The output-channel block: the largest of 2*lanes, lanes, ... that divides n
    (1 when n is odd)."""
    for b in (2 * lanes, lanes, 8, 4, 2):
        if b <= n and n % b == 0:
            return b
    return 1
