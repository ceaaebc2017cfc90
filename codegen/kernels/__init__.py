"""graphopt's own TE computes for the kernels that dominate CNN run time, one file each.

Weights are constants, so they are packed at compile time (numpy) into layouts whose inner
dimension is a block of output channels (``bn``, a multiple of the vector width): the
inner loop of the schedule (`codegen.schedules`) then loads one contiguous vector of
weights per reduction step and broadcasts one input element into it (the classic
register-blocked micro-kernel). Activations stay NCHW, so these kernels mix freely with the
relax ops around them. Each kernel's block carries its tag (`kernels.tags`), which is how
the schedules find it.
"""

from .common import pick_block
from .conv2d import emit_conv2d
from .dense import emit_dense
from .qdense import emit_qdense

__all__ = ["emit_conv2d", "emit_dense", "emit_qdense", "pick_block"]
