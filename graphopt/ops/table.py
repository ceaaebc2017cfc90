"""A markdown table of the supported ops, for the README."""

from __future__ import annotations

from .registry import OpSchema, supported_ops


def params(names) -> str:
    """Inputs or outputs as a short list: [x] optional, x... variadic, [x...] possibly empty."""
    out = []
    for n in names:
        if n.endswith("*?"):
            out.append(f"[{n[:-2]}...]")
        elif n.endswith("*"):
            out.append(f"{n[:-1]}...")
        elif n.endswith("?"):
            out.append(f"[{n[:-1]}]")
        else:
            out.append(n)
    return ", ".join(out) or "-"


def _row(s: OpSchema) -> str:
    return f"| {s.op_type} | {s.domain or 'ai.onnx'} | {params(s.inputs)} | {params(s.outputs)} |"


def supported_ops_markdown() -> str:
    """One row per registered op: op, domain, inputs, outputs ([x]: optional, x...: variadic)."""
    lines = ["| op | domain | inputs | outputs |", "|---|---|---|---|"]
    lines += [_row(s) for s in supported_ops()]
    return "\n".join(lines) + "\n"
