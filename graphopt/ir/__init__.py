"""graphopt's IR: types, graphs, the text form and the verifier. Imports no onnx, torch or tvm."""

from .attributes import Attr, AttrKind
from .function import OutlineError, inline, is_fused_group, outline, why_not_outline
from .graph import Change, Graph, IRError, Node, Provenance, Use, Value, topological_order
from .tensor import ElidedDataError, TensorData
from .types import Dim, DType, Shape, TensorType, is_static, shapes_compatible

__all__ = [
    "Attr", "AttrKind", "Change", "Dim", "DType", "ElidedDataError", "Graph", "IRError", "Node", "OutlineError",
    "Provenance", "Shape", "TensorData", "TensorType", "Use", "Value", "inline", "is_fused_group", "is_static",
    "outline", "shapes_compatible", "topological_order", "why_not_outline",
]
