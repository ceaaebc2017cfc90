"""A torn or garbage tuning database (under the case's own cache folder), and `kill -9`
of `graphopt compile` and of a tuning run at several moments. Afterwards: no partial
artifact, no stray temporary folders once the next run is done, and the next compile with
the same cache succeeds and matches the oracle ("corrupt state later" otherwise)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from . import checks, models
from .case import case
from .outcome import ACCEPT, EITHER, Obs


def _db_folder(ctx, cache: Path) -> Path:
    from graphopt.codegen.tuning import database_dir

    return database_dir("cpu", cache)


_WL = '{"workload": "garbage"}\n'

# name: files to write into the database folder
DAMAGE = {
    "workloads-garbage": {"workloads.json": b"\x00\xff\xfe not json at all\n", "records.json": b""},
    "records-garbage": {"workloads.json": b"", "records.json": b"[[[[[[{{{{\n"},
    "records-torn-line": {"workloads.json": b'["0x1", "AAAA"]\n', "records.json": b'[0, [[], [], 0.1], ["'},
    "workload-bad-base64": {"workloads.json": b'["0x12345", "!!!not base64!!!"]\n', "records.json": b""},
    "tasks-garbage": {"tasks.json": b"{{{{"},
    "tasks-list": {"tasks.json": b"[1, 2, 3]"},
    "tasks-used-no-db": {"tasks.json": b'{"123": {"used": true, "best_ms": 1.0}}'},
    "tasks-used-garbage-db": {"tasks.json": b'{"123": {"used": true, "best_ms": "fast"}}',
                              "workloads.json": b"\x00garbage\n", "records.json": b"\x00garbage\n"},
    "tasks-wrong-types": {"tasks.json": b'{"123": {"used": "yes", "trials": "many"}, "_meta": 5}'},
    "db-is-file": None,
    "cache-is-file": None,
}


def _damage(ctx, name: str, cache: Path) -> None:
    folder = _db_folder(ctx, cache)
    if name == "cache-is-file":
        cache.write_bytes(b"not a folder")
        return
    if name == "db-is-file":
        folder.parent.mkdir(parents=True, exist_ok=True)
        folder.write_bytes(b"not a folder")
        return
    folder.mkdir(parents=True, exist_ok=True)
    for fname, data in DAMAGE[name].items():
        (folder / fname).write_bytes(data)


def _compile(obs: Obs, d: Path, cache: Path, trials: int, out: Path):
    """graphopt.optimize(...).save(out) in this worker (a CLI start imports TVM anew, tens
    of seconds on a loaded machine); the call's outcome is recorded in ``obs``."""
    import graphopt

    with obs.call(f"graphopt.optimize(model.onnx, cache_dir=C, tune_trials={trials}).save({out.name})") as c:
        graphopt.optimize(str(d / "model.onnx"), cache_dir=str(cache), tune_trials=trials).save(out)
    return c


def _check_artifact(obs: Obs, out: Path, base: str) -> None:
    import graphopt

    feeds = models.inputs_for(models.load(base), 2)
    with obs.call(f"graphopt.load({out.name}).run(...)"):
        got = graphopt.load(out).run(**feeds)
        bad = checks.compare(checks.run_ort(models.model_bytes(base), feeds), got, "the artifact differs from the oracle")
        if bad:
            obs.corrupt_later = bad


def run_damaged_db(ctx, name: str, trials: int) -> Obs:
    d = ctx.case_dir(f"db-{name}")
    (d / "model.onnx").write_bytes(models.model_bytes("mlp"))
    cache = d / "cache"
    _damage(ctx, name, cache)
    obs = Obs(expect=EITHER, note=f"tuning database: {name}")
    c = _compile(obs, d, cache, trials, d / "art")
    if c.status == "ok":
        _check_artifact(obs, d / "art", "mlp")
    if c.status in ("ok", "error") and name != "cache-is-file":
        # Whatever the first compile made of it, the next one with the same cache must work.
        later = Obs(expect=ACCEPT)
        c2 = _compile(later, d, cache, 0, d / "art2")
        if c2.status != "ok":
            obs.corrupt_later = f"the next compile with the same cache failed: {c2.message}"
        else:
            _check_artifact(obs, d / "art2", "mlp")
    return obs


def run_kill(ctx, at: float, trials: int, base: str) -> Obs:
    """kill -9 of `graphopt compile` ``at`` seconds after it started."""
    d = ctx.case_dir(f"kill-{at}-{trials}")
    (d / "model.onnx").write_bytes(models.model_bytes(base))
    cache, out = d / "cache", d / "out" / "art"
    out.parent.mkdir()
    argv = [sys.executable, "-m", "graphopt", "compile", str(d / "model.onnx"), "-o", str(out), "--cache-dir",
            str(cache), "--tune-trials", str(trials)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    time.sleep(at)
    finished = proc.poll() is not None
    if not finished:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    obs = Obs(expect=ACCEPT, note=f"killed at {at} s" if not finished else f"finished before {at} s")
    if out.exists() and not (out / "manifest.json").is_file():
        obs.partial = f"a partial artifact after kill -9 at {at} s: {sorted(p.name for p in out.iterdir())}"
    elif out.exists():
        _check_artifact(obs, out, base)
    c = _compile(obs, d, cache, 0 if trials == 0 else 1, out)
    if c.status != "ok":
        obs.corrupt_later = f"the compile after kill -9 at {at} s failed: {c.message}"
    else:
        _check_artifact(obs, out, base)
        left = checks.leftovers(out.parent, {"art"})
        if left:
            obs.partial = f"stray files next to the artifact after the next run: {left}"
    return obs


def cases(seed: int) -> list:
    out = []
    for name in DAMAGE:
        # With no trials only graphopt's tasks.json decides whether the database is read;
        # a tuning run (one trial, slow) makes MetaSchedule load it.
        for trials in (0, 1) if name in ("workloads-garbage", "records-torn-line", "tasks-used-garbage-db") else (0,):
            out.append(case("tuning-db", f"{name}.trials{trials}", run_damaged_db, args=dict(name=name, trials=trials),
                            needs=("mlp",), timeout=700,
                            what=f"graphopt.optimize(mlp, cache_dir=C, tune_trials={trials}) with a damaged tuning "
                                 f"database ({name}), then again"))
    for at in (2.0, 5.0, 8.0):
        out.append(case("kill-9", f"compile@{at}", run_kill, args=dict(at=at, trials=0, base="tiny_cnn"), needs=("mlp",),
                        timeout=700, what=f"kill -9 of graphopt compile tiny_cnn.onnx at {at} s, then compile again"))
    for at in (15.0, 30.0):
        out.append(case("kill-9", f"tune@{at}", run_kill, args=dict(at=at, trials=8, base="mlp"), needs=("mlp",),
                        timeout=900, what=f"kill -9 of graphopt compile --tune-trials 8 at {at} s, then compile "
                                          "with tune_trials=1 and the same cache"))
    return out
