"""The op registry: schemas and type inference of every supported op. Importing this package
registers every op (``defs``), so any import of graphopt.ops.* sees a full registry."""

from .registry import (REQUIRED, AttrSpec, InferContext, InferError, OpSchema, OpTraits, PatternKind, attr_value, build,
                       decompose, get_schema, has_decomposition, infer_node, infer_types, register, set_decomposition,
                       set_traits, supported_ops)
from . import defs  # noqa: F401,E402  (after the registry, which the definitions fill)
from .refine import refine_types  # noqa: E402

__all__ = ["REQUIRED", "AttrSpec", "InferContext", "InferError", "OpSchema", "OpTraits", "PatternKind", "attr_value",
           "build", "decompose", "get_schema", "has_decomposition", "infer_node", "infer_types", "refine_types", "register", "set_decomposition", "set_traits",
           "supported_ops"]
