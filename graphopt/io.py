"""Reading and writing graphs by file name: .onnx (ONNX) or .ir (graphopt's text form)."""

from __future__ import annotations

from pathlib import Path

from .errors import GraphoptError, ModelLoadError
from .ir import Graph


def load_graph(path) -> Graph:
    """A graph from an .onnx file or an .ir text file (decided by the suffix)."""
    p = Path(path)
    if p.suffix == ".ir":
        from .ir.parser import ParseError, parse_ir
        from .ir.verifier import VerificationError, verify

        if not p.is_file():
            raise ModelLoadError(f"{p}: no such file")
        try:
            g = parse_ir(p.read_text(encoding="utf-8"))
            # The text form carries its types as written: a hand-edited file that parses
            # but contradicts the ops (Relu(%x: f32[2]) -> f32[3]) is refused here, as an
            # ONNX file whose stored types contradict the ops is.
            verify(g)
            return g
        except (ParseError, VerificationError, UnicodeDecodeError) as e:
            raise ModelLoadError(f"{p}: {e}") from None
    from .frontend.onnx_import import import_onnx

    return import_onnx(p)


def save_graph(graph: Graph, path, *, full_constants: bool = True) -> None:
    """Write ``graph`` atomically as .onnx or as .ir text (with every constant by default,
    so the file parses back to a runnable graph)."""
    from .util.files import atomic_write_text

    p = Path(path)
    if p.suffix == ".ir":
        from .ir.printer import print_ir

        atomic_write_text(p, print_ir(graph, full_constants=full_constants))
    elif p.suffix == ".onnx":
        from .frontend.onnx_export import save_onnx

        save_onnx(graph, p)
    else:
        raise GraphoptError(f"{p}: unknown output format (use .onnx or .ir)")
