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


__all__ = [
    "ExportError", "Graph", "GraphoptError", "ModelLoadError", "ParseError", "UnsupportedOpError",
    "VerificationError", "export_onnx", "import_onnx", "parse_ir", "print_ir", "verify",
]
