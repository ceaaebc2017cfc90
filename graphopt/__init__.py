"""graphopt: a graph compiler for neural networks.

    g = graphopt.import_onnx("model.onnx")
    print(graphopt.print_ir(g))
    model = graphopt.export_onnx(g)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import ExportError, GraphoptError, ModelLoadError, UnsupportedOpError
from .ir import Graph
from .ir.parser import ParseError, parse_ir
from .ir.printer import print_ir
from .ir.verifier import VerificationError, verify

__version__ = "0.1.0"

if TYPE_CHECKING:
    import onnx


def import_onnx(model) -> Graph:
    """Import an ONNX model (a path, bytes or an ``onnx.ModelProto``) as a Graph."""
    from .frontend.onnx_import import import_onnx as _imp

    return _imp(model)


def export_onnx(graph: Graph) -> "onnx.ModelProto":
    """Export a Graph as an ONNX model that passes onnx.checker."""
    from .frontend.onnx_export import export_onnx as _exp

    return _exp(graph)


def trace(model, example_inputs, dynamic_shapes=None, *, kwargs=None) -> Graph:
    """The IR graph of a ``torch.nn.Module`` (torch.export, then torch.onnx, then import).
    Dims marked dynamic (``torch.export.Dim("seq")``) stay symbolic under the given names."""
    from .frontend.torch_trace import trace as _trace

    return _trace(model, example_inputs, dynamic_shapes, kwargs=kwargs)


__all__ = [
    "ExportError", "Graph", "GraphoptError", "ModelLoadError", "ParseError", "UnsupportedOpError",
    "VerificationError", "export_onnx", "import_onnx", "parse_ir", "print_ir", "trace", "verify",
]
