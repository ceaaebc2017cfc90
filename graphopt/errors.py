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


class ShapeBindingError(GraphoptError):
    """A binding of input shapes or symbolic dims (``--shape``, ``--dim``, ``shapes=``,
    ``dims=``) that contradicts the model: the message names the input and the dim."""


class ExportError(GraphoptError):
    """A graph that cannot be written out as ONNX."""


class OutputPathError(GraphoptError):
    """An output path that cannot be written."""


class InternalError(Exception):
    """A bug in graphopt: an exception graphopt did not expect, with the pass, node or op
    where it happened. Deliberately not a GraphoptError: callers that catch user errors
    (a clean "unsupported", a bad file) must not swallow a bug as one of them."""

    def __init__(self, where: str, cause: BaseException):
        self.where, self.cause = where, cause
        msg = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
        detail = f"{type(cause).__name__}: {msg}" if msg else type(cause).__name__
        super().__init__(f"internal error in {where}: {detail} (a bug in graphopt; rerun with --debug "
                         "for the traceback, and report it)")
