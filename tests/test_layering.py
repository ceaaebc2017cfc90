"""graphopt's import structure, read with the standard library's ``ast`` (nothing is imported):
no import cycles among graphopt's modules, no module imports a private (underscore) name
from a sibling, and the layering of shared/DESIGN.md holds (which parts of graphopt, and
which of onnx, onnxruntime, torch and tvm, each part may import). Every import counts, the ones inside functions too: a function-level import
is how a cycle hides, not how it goes away. Only ``if TYPE_CHECKING:`` blocks are skipped,
since they never run.

Modules are ``graphopt.*`` with ``passes/`` and ``codegen/`` installed as ``graphopt.passes``
and ``graphopt.codegen`` (pyproject's package-dir). An import of ``a.b.c`` is an edge to the
deepest module of graphopt that name reaches; ``from pkg import name`` is an edge to
``pkg.name`` when that is a module, else to ``pkg``. A package's ``__init__`` importing its
own submodules is an edge like any other, so a submodule that imports from its package's
``__init__`` (which imports it back) is a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[1]
TREES = {"graphopt": ROOT / "graphopt", "graphopt.passes": ROOT / "passes", "graphopt.codegen": ROOT / "codegen"}


def module_files() -> dict[str, Path]:
    mods: dict[str, Path] = {}
    for pkg, base in TREES.items():
        for f in sorted(base.rglob("*.py")):
            rel = f.relative_to(base).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            mods[".".join([pkg, *parts])] = f
    return mods


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _resolve(mod: str, path: Path, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    pkg = mod if _is_package(path) else mod.rpartition(".")[0]
    for _ in range(node.level - 1):
        pkg = pkg.rpartition(".")[0]
    return f"{pkg}.{node.module}" if node.module else pkg


def _deepest(name: str, mods: dict[str, Path]) -> str | None:
    while name:
        if name in mods:
            return name
        name = name.rpartition(".")[0]
    return None


def _type_checking_blocks(tree: ast.AST) -> set[int]:
    skip = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test):
            for m in ast.walk(n):
                skip.add(id(m))
    return skip


def imports(mods: dict[str, Path], external: bool = False):
    """Yield (module, imported module, names taken, line) for every import in graphopt of
    a graphopt module (``external``: of another package, as its top-level name)."""
    for mod, path in mods.items():
        tree = ast.parse(path.read_text(), str(path))
        skip = _type_checking_blocks(tree)
        for n in ast.walk(tree):
            if id(n) in skip:
                continue
            if isinstance(n, ast.Import):
                for a in n.names:
                    tgt = _deepest(a.name, mods)
                    if tgt and not external:
                        yield mod, tgt, [], n.lineno
                    elif external and not tgt:
                        yield mod, a.name.split(".")[0], [], n.lineno
            elif isinstance(n, ast.ImportFrom):
                base = _resolve(mod, path, n)
                if external:
                    if n.level == 0 and not _deepest(base, mods):
                        yield mod, base.split(".")[0], [], n.lineno
                    continue
                for a in n.names:
                    if f"{base}.{a.name}" in mods:
                        yield mod, f"{base}.{a.name}", [], n.lineno
                    else:
                        tgt = _deepest(base, mods)
                        if tgt:
                            yield mod, tgt, [a.name], n.lineno


def import_graph() -> nx.DiGraph:
    mods = module_files()
    g = nx.DiGraph()
    g.add_nodes_from(mods)
    for src, dst, _names, line in imports(mods):
        if src != dst:
            g.add_edge(src, dst, line=line)
    return g


def cycles(g: nx.DiGraph) -> list[list[str]]:
    return [sorted(c) for c in nx.strongly_connected_components(g) if len(c) > 1]


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def private_imports() -> list[str]:
    """'a imports _x from b' for each private name taken from another module."""
    mods = module_files()
    bad = []
    for src, dst, names, line in imports(mods):
        for name in names:
            if name.startswith("_") and not name.startswith("__") and dst != src:
                bad.append(f"{_shown(mods[src])}:{line} imports {name} from {dst}")
    return bad


def test_no_import_cycles():
    g = import_graph()
    found = cycles(g)
    lines = []
    for comp in found:
        sub = g.subgraph(comp)
        cyc = nx.find_cycle(sub)
        lines.append(" -> ".join([a for a, _ in cyc] + [cyc[-1][1]]))
    assert not found, "import cycles:\n" + "\n".join(lines)


def test_no_private_names_imported_across_modules():
    bad = private_imports()
    assert not bad, "\n".join(bad)


# DESIGN.md's layering. A module obeys the rule of the longest prefix that names it.
# Internal: the parts of graphopt a part may not import.
FORBIDDEN = {
    "graphopt.ir": {"graphopt"},                 # nothing else of graphopt (see ALLOWED)
    "graphopt.ops": {"graphopt"},                # the IR only (see ALLOWED)
    "graphopt.passes": {"graphopt.codegen", "graphopt.testing", "graphopt.runtime", "graphopt.cli", "graphopt.api"},
    "graphopt.codegen": {"graphopt.passes", "graphopt.pipeline", "graphopt.frontend", "graphopt.testing",
                         "graphopt.cli", "graphopt.api"},
    "graphopt.runtime": {"graphopt.passes", "graphopt.pipeline", "graphopt.frontend", "graphopt.testing",
                         "graphopt.cli", "graphopt.api"},
}
# What the rules above let through, each with its reason.
ALLOWED = {
    ("graphopt.ir", "graphopt.ir"): "itself",
    ("graphopt.ir", "graphopt.errors"): "the user-facing error classes (errors imports nothing)",
    ("graphopt.ir.verifier", "graphopt.ops"): "the verifier checks every node's types against the op registry",
    ("graphopt.ops", "graphopt.ops"): "itself",
    ("graphopt.ops", "graphopt.ir"): "what the registry describes",
    ("graphopt.ops", "graphopt.errors"): "the user-facing error classes",
}
# External: which parts of graphopt may import each library (tests, benchmarks and scripts
# are outside graphopt and free).
LIBRARIES = {
    "onnx": ("graphopt.frontend", "graphopt.testing", "graphopt.conformance", "graphopt.bench"),
    "onnxruntime": ("graphopt.frontend", "graphopt.testing", "graphopt.conformance", "graphopt.bench",
                    "graphopt.runtime"),
    # graphopt.llm wraps a transformers model in the torch module it traces (its decode step)
    "torch": ("graphopt.frontend", "graphopt.testing", "graphopt.bench", "graphopt.llm"),
    "tvm": ("graphopt.codegen", "graphopt.runtime", "graphopt.bench"),
    "tvm_ffi": ("graphopt.codegen", "graphopt.runtime"),
}


def _under(mod: str, prefix: str) -> bool:
    return mod == prefix or mod.startswith(prefix + ".")


def _rule_for(mod: str, table) -> str | None:
    best = [p for p in table if _under(mod, p)]
    return max(best, key=len) if best else None


def layering_violations() -> list[str]:
    mods = module_files()
    bad = []
    for src, dst, _names, line in imports(mods):
        rule = _rule_for(src, FORBIDDEN)
        if rule is None or not any(_under(dst, f) for f in FORBIDDEN[rule]):
            continue
        if any(_under(src, a) and _under(dst, b) for a, b in ALLOWED):
            continue
        bad.append(f"{_shown(mods[src])}:{line}: {src} imports {dst} ({rule} may not)")
    for src, lib, _names, line in imports(mods, external=True):
        if lib in LIBRARIES and not any(_under(src, p) for p in LIBRARIES[lib]):
            bad.append(f"{_shown(mods[src])}:{line}: {src} imports {lib} (only {', '.join(LIBRARIES[lib])} may)")
    return list(dict.fromkeys(bad))  # one line per import statement


def test_layering_of_design_md():
    bad = layering_violations()
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("src,expect", [
    ("from .b import f\n", True),
    ("def g():\n    from .b import f\n", True),
    ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .b import f\n", False),
])
def test_checker_sees_a_cycle(tmp_path, monkeypatch, src, expect):
    # The checker itself: a two-module package whose b imports a, and a that imports b in
    # the way given; a cycle must be found exactly when that import runs.
    pkg = tmp_path / "graphopt"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text(src)
    (pkg / "b.py").write_text("from .a import _hidden\ndef f():\n    pass\n")
    monkeypatch.setattr(__import__(__name__, fromlist=["TREES"]), "TREES", {"graphopt": pkg})
    assert bool(cycles(import_graph())) is expect
    assert [p.split(" ", 1)[1] for p in private_imports()] == ["imports _hidden from graphopt.a"]


def test_layering_checker_finds_what_design_md_forbids(tmp_path, monkeypatch):
    pkg = tmp_path / "graphopt"
    (pkg / "ir").mkdir(parents=True)
    (pkg / "ops").mkdir()
    for f in ("__init__.py", "errors.py", "ir/__init__.py", "ops/__init__.py", "ops/registry.py"):
        (pkg / f).write_text("")
    (pkg / "ir" / "graph.py").write_text("import onnx\nfrom .. import errors\n\ndef f():\n    from ..ops import registry\n")
    (pkg / "ir" / "verifier.py").write_text("from ..ops import registry\n")
    monkeypatch.setattr(__import__(__name__, fromlist=["TREES"]), "TREES", {"graphopt": pkg})
    bad = [b.split(": ", 1)[1] for b in layering_violations()]
    assert bad == ["graphopt.ir.graph imports graphopt.ops.registry (graphopt.ir may not)",
                   "graphopt.ir.graph imports onnx (only graphopt.frontend, graphopt.testing, graphopt.conformance, "
                   "graphopt.bench may)"]
