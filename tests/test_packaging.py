"""Every Python package folder is listed in pyproject.toml, installed under graphopt."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_is_listed():
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(conf["packages"])
    dirs = conf["package-dir"]
    found = set()
    for pkg, d in dirs.items():
        base = ROOT / d
        for init in base.rglob("__init__.py"):
            rel = init.parent.relative_to(base)
            if any(part.startswith(".") or part == "__pycache__" for part in rel.parts):
                continue
            name = ".".join([pkg, *rel.parts]) if rel.parts else pkg
            # a folder mapped on its own (passes/ under graphopt/) is not a subpackage of graphopt
            if pkg == "graphopt" and rel.parts and f"graphopt.{rel.parts[0]}" in dirs and dirs[f"graphopt.{rel.parts[0]}"] != f"graphopt/{rel.parts[0]}":
                continue
            found.add(name)
    assert found <= listed, f"packages missing from pyproject.toml: {sorted(found - listed)}"
    assert not any(p.split(".")[0] != "graphopt" for p in listed)


def test_subpackages_import_under_graphopt():
    import importlib

    for name in ("graphopt.passes", "graphopt.codegen"):
        mod = importlib.import_module(name)
        assert Path(mod.__file__).parent.name == name.split(".")[1]
