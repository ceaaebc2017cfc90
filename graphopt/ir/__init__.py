"""graphopt's IR: types, graphs, the text form and the verifier. Imports no onnx, torch or tvm."""

from .attributes import Attr, AttrKind
from .graph import Change, Graph, IRError, Node, Provenance, Use, Value, topological_order
from .tensor import ElidedDataError, TensorData
from .types import Dim, DType, Shape, TensorType, is_static, shapes_compatible

__all__ = [
    "Attr", "AttrKind", "Change", "Dim", "DType", "ElidedDataError", "Graph", "IRError", "Node",
    "Provenance", "Shape", "TensorData", "TensorType", "Use", "Value", "is_static",
    "shapes_compatible", "topological_order",
]
