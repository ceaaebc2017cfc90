"""Lowering graphopt's IR to TVM, default schedules, tuning and artifacts."""

from .lowering import LoweringError, lower, lowered_ops, unsupported_nodes

__all__ = ["LoweringError", "lower", "lowered_ops", "unsupported_nodes"]
