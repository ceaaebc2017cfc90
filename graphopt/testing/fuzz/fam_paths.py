"""Output paths that exist or cannot be written, and a write that fails half-way (a file
size limit): a clean error, the existing file untouched, nothing half-written left."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import checks, models
from .case import case
from .outcome import ACCEPT, EITHER, ERROR, Obs


def _inputs(d: Path) -> list:
    np.save(d / "x.npy", np.random.default_rng(0).standard_normal((2, 8)).astype(np.float32))
    return ["-i", f"x={d / 'x.npy'}"]


def run_path(ctx, kind: str) -> Obs:
    d = ctx.case_dir(f"path-{kind}")
    (d / "model.onnx").write_bytes(models.model_bytes("mlp"))
    existing = d / "existing"
    existing.write_bytes(b"precious")
    folder = d / "folder"
    folder.mkdir()
    (folder / "keep.txt").write_text("keep")
    art = ctx.artifact("mlp")
    expect = ERROR
    argv = {
        "run-o-existing-file": ["run", art, *_inputs(d), "-o", existing],
        "run-o-under-file": ["run", art, *_inputs(d), "-o", existing / "sub"],
        "run-o-existing-folder": ["run", art, *_inputs(d), "-o", folder],
        "compile-o-existing-file": ["compile", d / "model.onnx", "-o", existing],
        "compile-o-under-file": ["compile", d / "model.onnx", "-o", existing / "art"],
        "compile-o-foreign-folder": ["compile", d / "model.onnx", "-o", folder],
        "compile-o-proc": ["compile", d / "model.onnx", "-o", "/proc/graphopt-fuzz/art"],
        "opt-o-under-file": ["opt", d / "model.onnx", "-O1", "-o", existing / "out.onnx"],
        "opt-o-folder": ["opt", d / "model.onnx", "-O1", "-o", folder],
        "opt-o-bad-suffix": ["opt", d / "model.onnx", "-O1", "-o", d / "out.txt"],
        "opt-o-existing": ["opt", d / "model.onnx", "-O1", "-o", d / "existing.onnx"],
        "opt-o-proc": ["opt", d / "model.onnx", "-O1", "-o", "/proc/graphopt-fuzz.onnx"],
    }[kind]
    if kind == "run-o-existing-folder":
        expect = EITHER
    if kind == "opt-o-existing":
        (d / "existing.onnx").write_bytes(b"old")
        expect = ACCEPT
    obs = Obs(expect=expect)
    obs.cli(argv, timeout=120)
    if existing.read_bytes() != b"precious" if existing.is_file() else True:
        obs.partial = f"{existing} was changed or removed"
    if sorted(p.name for p in folder.iterdir()) not in (["keep.txt"], ["keep.txt", "y.npy"]):
        obs.partial = f"{folder} now holds {sorted(p.name for p in folder.iterdir())}"
    left = checks.leftovers(d, {"model.onnx", "existing", "folder", "x.npy", "existing.onnx"})
    if left:
        obs.partial = f"left next to the output: {left}"
    return obs


def run_fsize(ctx, what: str) -> Obs:
    """The output write fails half-way (RLIMIT_FSIZE): a clean error and no temporary or
    partial file; the next run, without the limit, succeeds and leaves nothing else.

    One known exception, as for a ``kill -9``: when LLVM itself hits the limit while writing
    a library's object code, it ends the process with one line of its own ("LLVM ERROR: IO
    failure on output stream: File too large") before graphopt can clean up; the writer's
    pid-named temporary folder then stays until the next run removes it."""
    d = ctx.case_dir(f"fsize-{what}")
    # tiny_cnn: its optimized model (about 9 KB) and its library are over the limit.
    (d / "model.onnx").write_bytes(models.model_bytes("tiny_cnn"))
    out = d / ("art" if what == "compile" else "out.onnx")
    argv = ["compile", d / "model.onnx", "-o", out] if what == "compile" else ["opt", d / "model.onnx", "-O1", "-o", out]
    obs = Obs(expect=ERROR)
    # Small enough that the library (or model) cannot be written; the interpreter starts.
    first = obs.cli(argv, timeout=180, fsize=4096 if what == "opt" else 65536)
    left = checks.leftovers(d, {"model.onnx"} | ({out.name} if first.status == "ok" else set()))
    if first.status == "bug" and "LLVM ERROR: IO failure on output stream" in first.message:
        # LLVM ended the process itself (see the docstring): its one line is the message the
        # user gets, and what it left must go with the next run (checked below).
        first.status, left = "error", []
    if left:
        obs.partial = f"left after the failed write: {left}"
    again = Obs(expect=ACCEPT)
    c = again.cli(argv, timeout=180)
    if c.status != "ok":
        obs.corrupt_later = f"the next run failed: {c.message}"
    elif checks.leftovers(d, {"model.onnx", out.name}):
        obs.partial = f"left after the next run: {checks.leftovers(d, {'model.onnx', out.name})}"
    return obs


def cases(seed: int) -> list:
    kinds = ["run-o-existing-file", "run-o-under-file", "run-o-existing-folder", "compile-o-existing-file",
             "compile-o-under-file", "compile-o-foreign-folder", "compile-o-proc", "opt-o-under-file", "opt-o-folder",
             "opt-o-bad-suffix", "opt-o-existing", "opt-o-proc"]
    out = [case("output-paths", k, run_path, args=dict(kind=k), needs=("mlp",), timeout=150,
                sample=k == "run-o-existing-file", what=f"graphopt {k.replace('-', ' ', 1)}") for k in kinds]
    for what in ("opt", "compile"):
        out.append(case("output-paths", f"fsize-{what}", run_fsize, args=dict(what=what), timeout=400,
                        what=f"graphopt {what} under a file size limit, then again without"))
    return out
