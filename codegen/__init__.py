"""Lowering graphopt's IR to TVM (`codegen.lower`), default schedules, tuning and artifacts."""

from . import lower
from .lower import LoweringError, LoweringRefusedError, lowered_ops, unsupported_nodes

__all__ = ["LoweringError", "LoweringRefusedError", "lower", "lowered_ops", "unsupported_nodes"]
