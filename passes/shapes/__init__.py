"""Shape passes: specialize-shapes binds symbolic dims to sizes (buckets and the shape
advisor are to come)."""

from . import specialize  # noqa: F401

__all__ = ["specialize"]
