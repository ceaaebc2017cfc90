"""The op registry: schemas and type inference of every supported op."""

from .registry import (REQUIRED, AttrSpec, InferContext, InferError, OpSchema, OpTraits, PatternKind, attr_value, build,
                       get_schema, infer_node, infer_types, register, set_traits, supported_ops)

__all__ = ["REQUIRED", "AttrSpec", "InferContext", "InferError", "OpSchema", "OpTraits", "PatternKind", "attr_value",
           "build", "get_schema", "infer_node", "infer_types", "register", "set_traits", "supported_ops"]
