"""PyTorch -> graphopt IR, through torch's own maintained path: torch.export, then
torch.onnx's exporter, then graphopt's ONNX import. graphopt keeps no ATen-to-ONNX table.

Dims marked dynamic (``torch.export.Dim("seq")``) stay symbolic in the IR under the names
the user gave; constants keep the module's parameter names (``transformer.h.0.attn...``).
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import warnings
from dataclasses import dataclass
from typing import Any, Optional

from ..errors import GraphoptError
from ..ir import Graph
from ..ir.symbols import rename_dims


class TraceError(GraphoptError):
    """torch.export could not trace the module."""


@dataclass
class TracedModule:
    """A traced module: its IR graph and how to map torch's (args, kwargs) and outputs onto
    the graph's flat inputs and outputs."""

    graph: Graph
    in_spec: Any    # torch.utils._pytree.TreeSpec of (args, kwargs)
    out_spec: Any   # TreeSpec of the module's output (tuples, dicts, ModelOutput...)
    input_names: list[str]


def _as_args(example_inputs) -> tuple:
    if isinstance(example_inputs, tuple):
        return example_inputs
    if isinstance(example_inputs, list):
        return tuple(example_inputs)
    return (example_inputs,)


_USER_FRAME = re.compile(r'File "([^"]+)", line (\d+), in (\S+)\n\s*(.+)')
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")  # terminal colour codes torch.onnx puts in its messages
_SENTENCE = re.compile(r"(?<=[.!])\s")
_IN_TORCH = re.compile(r"[/\\]site-packages[/\\](torch|onnxscript)[/\\]")


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def _first_line(e: BaseException) -> str:
    text = strip_ansi(str(e))
    return next((ln.strip() for ln in text.splitlines() if ln.strip()), type(e).__name__)[:300]


def _chain(e: BaseException) -> list[BaseException]:
    """``e`` and the exceptions behind it (``__cause__``, else ``__context__``): torch.onnx
    says which step failed, and only the last one says why."""
    out, seen = [], set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        out.append(e)
        e = e.__cause__ or e.__context__
    return out


def _user_line(chain: list[BaseException]) -> Optional[str]:
    """The innermost source line outside torch: from the "Original traceback" torch puts in
    its messages, else from the tracebacks themselves."""
    import traceback

    for exc in reversed(chain):
        frames = [m for m in _USER_FRAME.finditer(strip_ansi(str(exc))) if not _IN_TORCH.search(m.group(1))]
        if frames:
            f = frames[-1]
            return f"{f.group(1)}:{f.group(2)} in {f.group(3)}: {f.group(4).strip()}"
    for exc in reversed(chain):
        frames = [f for f in traceback.extract_tb(exc.__traceback__)
                  if not _IN_TORCH.search(f.filename) and "/graphopt/" not in f.filename.replace("\\", "/")]
        if frames:
            f = frames[-1]
            return f"{f.filename}:{f.lineno} in {f.name}: {(f.line or '').strip()}"
    return None


# Failures with a known way around them: (model types, text in the root cause, the hint).
_WORKAROUNDS = [
    (("t5", "mt5"), "Cannot view a tensor with shape",
     'T5\'s "sdpa" attention does not export through torch.onnx; build the model with '
     'attn_implementation="eager" (from_pretrained(..., attn_implementation="eager")), which does'),
    ((), "cache_utils.",
     "the model returns a transformers Cache object, which torch.export cannot flatten; trace it with "
     "use_cache=False (in the call's kwargs or the model's config)"),
]


def _workaround(model, root: BaseException) -> Optional[str]:
    cfg = getattr(model, "config", None)
    model_type = getattr(cfg, "model_type", None)
    text = strip_ansi(str(root))
    for types, needle, hint in _WORKAROUNDS:
        if needle in text and (not types or model_type in types):
            return hint
    return None


def _explain(model, e: BaseException, headline: str, fallback_hint: Optional[str]) -> str:
    chain = _chain(e)
    root = chain[-1]
    if root is e:
        lines = [f"{headline}: {type(e).__name__}: {_first_line(e)}"]
    else:  # the outer exception only says which step failed: its first sentence is enough
        lines = [f"{headline}: {_SENTENCE.split(_first_line(e), maxsplit=1)[0]}"]
    if root is not e:
        lines.append(f"  cause: {type(root).__name__}: {_first_line(root)}")
    where = _user_line(chain)
    if where:
        lines.append(f"  at {where}")
    hint = _workaround(model, root) or fallback_hint
    if hint:
        lines.append(f"  hint: {hint}")
    return "\n".join(lines)


def _explain_export_failure(model, e: BaseException) -> str:
    return _explain(model, e, f"torch.export cannot trace {type(model).__name__}",
                    "torch.compile(model, backend=\"graphopt\") tolerates graph breaks: it compiles the "
                    "parts torch can capture and runs the rest eagerly")


def _explain_onnx_failure(model, e: BaseException) -> str:
    return _explain(model, e, f"torch.onnx could not convert {type(model).__name__}", None)


@contextlib.contextmanager
def _quiet():
    """torch.onnx prints progress and warnings on every export; keep the user's console clean."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch._dynamo", "torch.export", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, lv in zip(loggers, levels):
            lg.setLevel(lv)


def _user_dim_names(model, args: tuple, kwargs: Optional[dict], dynamic_shapes) -> list[dict[int, str]]:
    """For each flat tensor input (args then kwargs, in torch.export's order), the names the
    user gave its dynamic dims."""
    import inspect

    def axes(spec) -> dict[int, str]:
        out: dict[int, str] = {}
        items = spec.items() if isinstance(spec, dict) else enumerate(spec or ())
        for axis, dim in items:
            name = getattr(dim, "__name__", None)
            if isinstance(axis, int) and isinstance(name, str) and name:
                out[axis] = name
        return out

    n_args, kwargs = len(args), dict(kwargs or {})
    if dynamic_shapes is None:
        return []
    if isinstance(dynamic_shapes, dict):
        params = list(inspect.signature(model.forward).parameters)
        per_arg = [dynamic_shapes.get(params[i]) if i < len(params) else None for i in range(n_args)]
        per_kw = [dynamic_shapes.get(k) for k in kwargs]
    else:
        seq = list(dynamic_shapes)
        per_arg = seq[:n_args] + [None] * max(0, n_args - len(seq))
        per_kw = [None] * len(kwargs)
    return [axes(s) if isinstance(s, (dict, list, tuple)) else {} for s in per_arg + per_kw]


def _symbol_names(ep, model, args, kwargs, dynamic_shapes) -> dict[str, str]:
    """torch's symbol for each dynamic dim (``s77``) -> the name the user gave it."""
    names = _user_dim_names(model, args, kwargs, dynamic_shapes)
    placeholders = {n.name: n for n in ep.graph.nodes if n.op == "placeholder"}
    mapping: dict[str, str] = {}
    for i, inp in enumerate(ep.graph_signature.user_inputs):
        node = placeholders.get(inp)
        val = node.meta.get("val") if node is not None else None
        if i >= len(names) or val is None or not hasattr(val, "shape"):
            continue
        for axis, name in names[i].items():
            if axis < len(val.shape):
                sym = str(val.shape[axis])
                if not sym.isdigit():
                    mapping[sym] = name
    return mapping


def trace_module(model, example_inputs, dynamic_shapes=None, *, kwargs: Optional[dict] = None) -> TracedModule:
    """Trace ``model`` on ``example_inputs`` (a tensor or a tuple of them); see `trace`."""
    import torch

    from .onnx_import import import_onnx

    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"trace takes a torch.nn.Module, got {type(model).__name__}")
    args = _as_args(example_inputs)
    was_training = model.training
    model.eval()  # graphopt compiles for inference: dropout off, batchnorm statistics frozen
    try:
        with _quiet():
            try:
                ep = torch.export.export(model, args, kwargs=kwargs, dynamic_shapes=dynamic_shapes, strict=False)
            except Exception as e:
                raise TraceError(_explain_export_failure(model, e)) from e
            try:
                program = torch.onnx.export(ep, (), dynamo=True, verbose=False, report=False)
            except Exception as e:
                raise TraceError(_explain_onnx_failure(model, e)) from e
    finally:
        model.train(was_training)
    proto = program.model_proto
    graph = import_onnx(proto)
    graph.name = type(model).__name__
    rename_dims(graph, _symbol_names(ep, model, args, kwargs, dynamic_shapes))
    graph._journal.clear()
    return TracedModule(graph, ep.call_spec.in_spec, ep.call_spec.out_spec, [v.name for v in graph.inputs])


def trace(model, example_inputs, dynamic_shapes=None, *, kwargs: Optional[dict] = None) -> Graph:
    """The IR graph of a torch module, traced on ``example_inputs``.

    ``dynamic_shapes`` is torch.export's: e.g. ``({1: torch.export.Dim("seq")},)`` keeps the
    second dim of the first input symbolic, named ``seq``.
    """
    return trace_module(model, example_inputs, dynamic_shapes, kwargs=kwargs).graph
