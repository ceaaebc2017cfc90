"""The campaign's scratch space, shared by the workers: one temp root per run, a fresh
folder per case, and the compiled base artifacts (built once per run, then copied and
tampered by the cases)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

ROOT_ENV = "GRAPHOPT_FUZZ_ROOT"


class Ctx:
    def __init__(self, root):
        self.root = Path(root)
        self._n = 0
        self._loaded: dict = {}

    def case_dir(self, name: str) -> Path:
        """A new empty folder for one case (inside the run's root, removed with it)."""
        self._n += 1
        safe = "".join(c if c.isalnum() else "_" for c in name)[-60:]
        d = Path(tempfile.mkdtemp(prefix=f"{safe}.", dir=self.root / "cases"))
        return d

    def artifact(self, name: str) -> Path:
        """The compiled base artifact ``name`` (see fixtures.FIXTURES)."""
        p = self.root / "artifacts" / name
        if not (p / "manifest.json").is_file():
            raise RuntimeError(f"fixture {name!r} was not built (see the setup results)")
        return p

    def artifact_copy(self, name: str, into: Path) -> Path:
        dst = into / name
        shutil.copytree(self.artifact(name), dst, symlinks=True)
        return dst

    def loaded(self, name: str):
        """The base artifact loaded once per worker (graphopt.load is not what those cases test)."""
        if name not in self._loaded:
            import graphopt

            self._loaded[name] = graphopt.load(self.artifact(name))
        return self._loaded[name]


def make_root() -> Path:
    root = Path(tempfile.mkdtemp(prefix="graphopt-fuzz."))
    for sub in ("cases", "artifacts", "cache"):
        (root / sub).mkdir()
    return root


def worker_ctx() -> Ctx:
    return Ctx(os.environ[ROOT_ENV])
