"""User-facing errors. Each message names the file, node, op or input at fault; the CLI
prints it on one line and exits non-zero."""

from __future__ import annotations


class GraphoptError(Exception):
    """Base of every error graphopt reports to a user (as opposed to a bug)."""


class ModelLoadError(GraphoptError):
    """A model file or object that cannot be read, checked or converted."""


class UnsupportedOpError(GraphoptError):
    """One or more ops graphopt does not know; ``ops`` lists (op, node name) pairs."""

    def __init__(self, ops: list[tuple[str, str]], where: str = ""):
        self.ops = ops
        kinds: dict[str, list[str]] = {}
        for op, node in ops:
            kinds.setdefault(op, []).append(node)
        parts = [f"{op} (nodes: {', '.join(repr(n) for n in names[:5])}{', ...' if len(names) > 5 else ''})"
                 for op, names in sorted(kinds.items())]
        prefix = f"{where}: " if where else ""
        super().__init__(f"{prefix}{len(kinds)} unsupported op type(s): " + "; ".join(parts))


class ExportError(GraphoptError):
    """A graph that cannot be written out as ONNX."""


class OutputPathError(GraphoptError):
    """An output path that cannot be written."""
