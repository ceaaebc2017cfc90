"""graphopt's import structure, read with the standard library's ``ast`` (nothing is imported):
no import cycles among graphopt's modules, and no module imports a private (underscore) name
from a sibling. Every import counts, the ones inside functions too: a function-level import
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


def imports(mods: dict[str, Path]):
    """Yield (module, imported module, names taken, line) for every import in graphopt."""
    for mod, path in mods.items():
        tree = ast.parse(path.read_text(), str(path))
        skip = _type_checking_blocks(tree)
        for n in ast.walk(tree):
            if id(n) in skip:
                continue
            if isinstance(n, ast.Import):
                for a in n.names:
                    tgt = _deepest(a.name, mods)
                    if tgt:
                        yield mod, tgt, [], n.lineno
            elif isinstance(n, ast.ImportFrom):
                base = _resolve(mod, path, n)
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
