"""Regenerates the README's supported-op table from the op registry and the lowering table.

    .venv/bin/python scripts/update_readme.py          # rewrite README.md
    .venv/bin/python scripts/update_readme.py --check  # exit 1 if README.md is stale
"""

from __future__ import annotations

import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
BEGIN, END = "<!-- ops-table -->", "<!-- /ops-table -->"


def ops_table() -> str:
    from graphopt.ops import supported_ops
    from graphopt.ops.table import params

    try:
        from graphopt.codegen.lower import lowered_ops

        lowered = lowered_ops()
    except ImportError:
        lowered = None
    schemas = supported_ops()
    head = "| op | inputs | outputs |" + (" lowers to TVM |" if lowered is not None else "")
    sep = "|---|---|---|" + ("---|" if lowered is not None else "")
    rows = []
    for s in schemas:
        row = f"| {s.qualified} | {params(s.inputs)} | {params(s.outputs)} |"
        if lowered is not None:
            row += " yes |" if s.qualified in lowered else " no |"
        rows.append(row)
    summary = f"{len(schemas)} ops in the registry (ONNX opset 21 semantics)"
    if lowered is not None:
        summary += f"; {sum(1 for s in schemas if s.qualified in lowered)} lower to TVM"
    return "\n".join([summary + ". `[x]`: optional, `x...`: variadic.", "", head, sep, *rows])


def render(text: str) -> str:
    if BEGIN not in text:
        raise SystemExit(f"{README}: marker {BEGIN} not found")
    before, rest = text.split(BEGIN, 1)
    after = rest.split(END, 1)[1] if END in rest else ""
    return f"{before}{BEGIN}\n{ops_table()}\n{END}{after}"


def main(argv: list[str]) -> int:
    text = README.read_text()
    new = render(text)
    if "--check" in argv:
        if new != text:
            print("README.md's op table is stale: run .venv/bin/python scripts/update_readme.py", file=sys.stderr)
            return 1
        return 0
    README.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
