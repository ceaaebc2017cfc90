"""graphopt IR -> Relax IRModule, op by op through a registry of lowerings.

`driver.lower` walks the graph; each op family's module registers its lowerings with
`registry.register_lowering` when imported here. Most ops map onto relax ops (which TVM
legalizes to TIR through topi); on the CPU, the kernels that dominate CNN run time (Conv,
Gemm/MatMul with constant weights) are graphopt's own TE computes over weights packed at
compile time (packed.py, `codegen.kernels`), which `codegen.schedules` then schedules.

The families, one file each: elementwise, activations, attention, cache (the KV cache write), shape, index, reduce, linalg, conv,
pool, norm, resize, quant, vision, control (If/Loop), packed (CPU kernels), integer (the CPU integer matmul).
"""

from . import (activations, attention, cache, control, conv, elementwise, index, integer, linalg, norm, packed, pool,  # noqa: F401
               quant, reduce, resize, rotary, shape, vision)
from .driver import Lowered, lower
from .errors import LoweringError, LoweringRefusedError
from .index import IndexRangeError
from .registry import lowered_ops, register_lowering, unsupported_nodes

__all__ = ["IndexRangeError", "Lowered", "LoweringError", "LoweringRefusedError", "lower", "lowered_ops",
           "register_lowering", "unsupported_nodes"]
