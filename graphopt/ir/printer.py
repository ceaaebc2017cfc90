"""The text form of the IR: one node per line, a type on every value, attributes inline.

    graph main(%x: f32[N, 4]) opset("": 21) {
      const %w: f32[4, 8] = elided<3f0a9c21d4e5b6a7>
      %y: f32[N, 8] = MatMul(%x, %w) @matmul_0
      return %y
    }

`parser.parse_ir` reads it back, and printing the parsed graph gives the same text.
Constants with more than `SMALL_CONSTANT` elements print as a digest unless
``full_constants`` is set, which prints their bytes (base64) so nothing is lost.
"""

from __future__ import annotations

import base64
import json
import re

import numpy as np

from typing import TYPE_CHECKING

from .attributes import Attr, AttrKind
from .tensor import TensorData
from .types import DType

if TYPE_CHECKING:  # annotations only: graph.py prints through this module
    from .graph import Graph, Node, Value

SMALL_CONSTANT = 16
_BARE = re.compile(r"^[A-Za-z0-9_.\-/]+$")


def ident(name: str) -> str:
    return name if _BARE.match(name) else json.dumps(name)


def format_float(x: float, dtype: DType = DType.FLOAT32) -> str:
    if np.isnan(x):
        return "nan"
    if np.isinf(x):
        return "inf" if x > 0 else "-inf"
    if dtype is DType.FLOAT64:
        s = repr(float(x))
    elif dtype is DType.FLOAT16:
        s = str(np.float16(x))
    else:
        s = str(np.float32(x))
    if not any(c in s for c in ".e"):
        s += ".0"
    return s


def _format_element(x, dtype: DType) -> str:
    if dtype is DType.BOOL:
        return "true" if bool(x) else "false"
    if dtype is DType.STRING:
        return json.dumps(x.decode("utf-8", "surrogateescape") if isinstance(x, bytes) else str(x))
    if dtype.is_float and dtype is not DType.BFLOAT16:
        return format_float(x, dtype)
    return str(int(x))


def format_tensor_data(data: TensorData, full: bool = False) -> str:
    if data.is_elided:
        return f"elided<{data.digest}>"
    if data.numel <= SMALL_CONSTANT:
        # bf16 constants are raw uint16 bits, printed as such.
        flat = data.numpy().reshape(-1)
        return "dense<[" + ", ".join(_format_element(x, data.dtype) for x in flat) + "]>"
    if full and data.dtype is not DType.STRING:
        raw = np.ascontiguousarray(data.numpy()).tobytes()
        return f'base64<"{base64.b64encode(raw).decode()}">'
    if full:
        flat = data.numpy().reshape(-1)
        return "dense<[" + ", ".join(_format_element(x, data.dtype) for x in flat) + "]>"
    return f"elided<{data.digest}>"


def format_attr(a: Attr, indent: int, full: bool) -> str:
    k, v = a.kind, a.value
    if k is AttrKind.INT:
        return str(v)
    if k is AttrKind.FLOAT:
        return format_float(v)
    if k is AttrKind.STRING:
        return json.dumps(v)
    if k is AttrKind.INTS:
        return "[" + ", ".join(str(x) for x in v) + "]" if v else "ints[]"
    if k is AttrKind.FLOATS:
        return "[" + ", ".join(format_float(x) for x in v) + "]" if v else "floats[]"
    if k is AttrKind.STRINGS:
        return "[" + ", ".join(json.dumps(x) for x in v) + "]" if v else "strings[]"
    if k is AttrKind.TENSOR:
        return f"tensor<{v.type}: {format_tensor_data(v, full)}>"
    if k is AttrKind.GRAPH:
        return _format_graph(v, indent, full)
    raise AssertionError(k)


def _value_decl(v: Value) -> str:
    return f"%{ident(v.name)}: {v.type}"


def _ref(v) -> str:
    return "_" if v is None else f"%{ident(v.name)}"


def format_node(node: Node, indent: int = 0, full: bool = False) -> str:
    outs = ", ".join("_" if o is None else _value_decl(o) for o in node.outputs)
    op = f"{node.domain}.{node.op_type}" if node.domain else node.op_type
    s = (f"{outs} = " if node.outputs else "") + f"{op}(" + ", ".join(_ref(i) for i in node.inputs) + ")"
    if node.attrs:
        parts = [f"{ident(k)}={format_attr(node.attrs[k], indent, full)}" for k in sorted(node.attrs)]
        s += " {" + ", ".join(parts) + "}"
    s += f" @{ident(node.name)}"
    return s + _provenance(node.provenance)


def _provenance(p) -> str:
    if p is None:
        return ""
    return f" <- {ident(p.rule)}(" + ", ".join(ident(x) for x in p.sources) + ")"


def _format_graph(g: Graph, indent: int, full: bool) -> str:
    pad = "  " * (indent + 1)
    head = f"graph {ident(g.name)}(" + ", ".join(_value_decl(v) for v in g.inputs) + ")"
    if g.opset_imports:
        head += " opset(" + ", ".join(f"{json.dumps(d)}: {v}" for d, v in sorted(g.opset_imports.items())) + ")"
    lines = [head + " {"]
    for c in g.constants:
        lines.append(f"{pad}const {_value_decl(c)} = {format_tensor_data(c.const, full)}"  # type: ignore[arg-type]
                     + _provenance(c.provenance))
    for n in g.nodes:
        lines.append(pad + format_node(n, indent + 1, full))
    lines.append(f"{pad}return " + ", ".join(_ref(o) for o in g.outputs))
    lines.append("  " * indent + "}")
    return "\n".join(lines)


def print_ir(graph: Graph, *, full_constants: bool = False) -> str:
    """The text form of ``graph`` (ends with a newline)."""
    return _format_graph(graph, 0, full_constants) + "\n"
