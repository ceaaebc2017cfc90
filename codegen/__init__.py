"""Lowering graphopt's IR to TVM, default schedules, tuning and artifacts."""

from .lowering import LoweringError, LoweringRefusedError, lower, lowered_ops, unsupported_nodes

__all__ = ["LoweringError", "LoweringRefusedError", "lower", "lowered_ops", "unsupported_nodes"]
