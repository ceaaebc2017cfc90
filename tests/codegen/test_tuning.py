"""MetaSchedule tuning: persistent database, reuse, failed candidates, numerics."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper


def _matmul_graph(n: int = 64):
    import graphopt

    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((n, n)).astype(np.float32), "w")
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], "mm",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, n])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, n])], [w])
    return graphopt.import_onnx(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))


def _check(graph, model):
    from graphopt.testing import assert_close, run_reference

    x = {"x": np.random.default_rng(2).standard_normal((64, 64)).astype(np.float32)}
    assert_close(run_reference(graph, x), model.run(**x), ["y"])


def _compile_without_tuning(graph, cache, **kw):
    """compile_model with MetaSchedule's builder and runner made to fail the test: nothing
    may be tuned (the database must answer)."""
    from graphopt.codegen import tuning
    from graphopt.compiler import compile_model

    def no(target_name):
        raise AssertionError("a compile that should reuse the database started tuning")

    mp = pytest.MonkeyPatch()
    mp.setattr(tuning, "make_builder", no)
    mp.setattr(tuning, "make_runner", no)
    try:
        return compile_model(graph, opt_level=None, cache_dir=cache, **kw)
    finally:
        mp.undo()


def test_tune_writes_database_and_second_compile_reuses_it(tmp_path):
    from graphopt.compiler import compile_model
    from graphopt.codegen.tuning import RECORDS, TASKS, WORKLOADS, database_dir

    graph = _matmul_graph()
    cm = compile_model(graph, opt_level=None, tune_trials=4, cache_dir=tmp_path)
    info = cm.report.tuning
    assert info["trials"] == 4 and not info["reused"]
    folder = database_dir("cpu", tmp_path)
    assert str(folder).startswith(str(tmp_path)) and folder.name.startswith("graphopt-")
    for f in (WORKLOADS, RECORDS, TASKS):
        assert (folder / f).is_file(), f
    assert len((folder / RECORDS).read_text().splitlines()) == 4
    (task,) = info["tasks"]
    assert task["trials"] == 4 and task["default_ms"] > 0
    assert task["tuned_ms"] is not None and task["used"] == (task["tuned_ms"] < task["default_ms"])
    assert "trials" in cm.report.summary() and "default ms" in cm.report.tuning_table()
    _check(graph, cm)

    # the reuse itself (not its wall time): no candidate is built, no task is tuned now,
    # the database is reported reused, and the winners come from it
    again = _compile_without_tuning(graph, tmp_path, tune_trials=4)
    assert again.report.tuning["reused"] and again.report.tuning["trials"] == 0
    assert not any(t["tuned_now"] for t in again.report.tuning["tasks"])
    assert again.report.from_database == (1 if task["used"] else 0)
    assert "reused" in again.report.summary()
    assert len((folder / RECORDS).read_text().splitlines()) == 4
    _check(graph, again)

    # without a budget the winners (if the tuned kernel won) come from the database
    plain = compile_model(graph, opt_level=None, cache_dir=tmp_path)
    assert plain.report.from_database == (1 if task["used"] else 0)
    _check(graph, plain)


def test_failing_candidates_do_not_fail_the_compile(tmp_path, monkeypatch):
    from tvm.ir.utils import derived_object
    from tvm.s_tir.meta_schedule.builder import BuilderResult, PyBuilder

    from graphopt.codegen import tuning
    from graphopt.compiler import compile_model

    @derived_object
    class Failing(PyBuilder):
        def build(self, build_inputs):
            return [BuilderResult(None, "simulated build failure") for _ in build_inputs]

    monkeypatch.setattr(tuning, "make_builder", lambda target_name: Failing())
    graph = _matmul_graph()
    cm = compile_model(graph, opt_level=None, tune_trials=2, cache_dir=tmp_path)
    (task,) = cm.report.tuning["tasks"]
    assert task["failed"] == task["trials"] == 2
    assert not task["used"] and task["tuned_ms"] is None
    assert "simulated build failure" in (task["error"] or "")
    _check(graph, cm)


def test_torn_database_lines_are_repaired(tmp_path):
    """Structural repair (JSON level): torn lines go aside, records of a removed workload
    with them, later workloads renumbered."""
    from graphopt.codegen.tuning import RECORDS, WORKLOADS, open_json_database, repair_database

    (tmp_path / WORKLOADS).write_text('["0x1", "a"]\n["0x2", "b"]\n["0x3", "c')  # torn last workload
    (tmp_path / RECORDS).write_text('[0, [1, 2, 3, 4]]\n[2, [5, 6, 7, 8]]\n[0, [1, 2')
    fixed = repair_database(tmp_path)
    assert fixed["workloads"] == 1 and fixed["records"] == 2
    assert (tmp_path / WORKLOADS).read_text() == '["0x1", "a"]\n["0x2", "b"]\n'
    assert (tmp_path / RECORDS).read_text() == '[0, [1, 2, 3, 4]]\n'
    assert (tmp_path / (WORKLOADS + ".damaged")).read_text() == '["0x3", "c\n'  # moved, not deleted
    assert len((tmp_path / (RECORDS + ".damaged")).read_text().splitlines()) == 2
    (tmp_path / WORKLOADS).write_text('[1, 2, 3]\n["0x1", "a"]\n')  # a bad workload first: renumbered
    (tmp_path / RECORDS).write_text('[0, [1, 2, 3, 4]]\n[1, [5, 6, 7, 8]]\n')
    repair_database(tmp_path)
    assert (tmp_path / RECORDS).read_text() == '[0, [5, 6, 7, 8]]\n'
    # an empty database opens; a clean one is left alone
    empty = tmp_path / "empty"
    db = open_json_database(empty)
    assert len(db) == 0
    assert repair_database(empty) == {"workloads": 0, "records": 0, "aside": []}


# --------------------------------------------------------------------------- damaged real databases
@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """A real database: the 64x64 matmul tuned for 4 trials."""
    from graphopt.compiler import compile_model
    from graphopt.codegen.tuning import database_dir

    cache = tmp_path_factory.mktemp("tuned")
    compile_model(_matmul_graph(), opt_level=None, tune_trials=4, cache_dir=cache)
    return database_dir("cpu", cache)


def _copy_db(tuned, tmp_path, used=True):
    """A copy of the tuned database in a fresh cache; ``used`` marks the task's tuned
    kernel a winner, so that a compile without a budget opens the database too."""
    from graphopt.codegen.tuning import TASKS, database_dir

    cache = tmp_path / "cache"
    folder = database_dir("cpu", cache)
    shutil.copytree(tuned, folder)
    state = json.loads((folder / TASKS).read_text())
    for k, v in state.items():
        if not k.startswith("_"):
            v["used"] = used
    (folder / TASKS).write_text(json.dumps(state))
    return cache, folder


def _damage(folder, how):
    from graphopt.codegen.tuning import RECORDS, TASKS, WORKLOADS

    rec, wl = folder / RECORDS, folder / WORKLOADS
    lines = rec.read_text().splitlines()
    if how == "torn-last-record":
        rec.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][: len(lines[-1]) // 2])
        return lines[-1][: len(lines[-1]) // 2]
    if how == "binary-garbage":
        rec.write_bytes(rec.read_bytes() + os.urandom(300).replace(b"\n", b"x") + b"\n")
        return None
    if how == "record-of-wrong-shape":
        bad = '[0, {"x": 1}]'
    elif how == "unknown-instruction":
        bad = lines[0].replace("SamplePerfectTile", "SamplePerfectTilX", 1)
    elif how == "record-of-missing-workload":
        bad = "[7" + lines[0][2:]
    elif how == "garbage-workload":  # and a record of it, which goes aside with it
        wl.write_text(wl.read_text() + '["123", "not base64!"]\n')
        rec.write_text(rec.read_text() + "[1" + lines[0][2:] + "\n")
        return '["123", "not base64!"]'
    elif how == "tasks-json-wrong-types":
        (folder / TASKS).write_text('{"abc": {"default_ms": "fast", "trials": "many"}}')
        return None
    rec.write_text("\n".join(lines[:1] + [bad] + lines[1:]) + "\n")
    return bad


DAMAGES = ["torn-last-record", "binary-garbage", "record-of-wrong-shape", "unknown-instruction",
           "record-of-missing-workload", "garbage-workload", "tasks-json-wrong-types"]


@pytest.mark.parametrize("how", DAMAGES)
@pytest.mark.parametrize("budget", [0, 4])
def test_damaged_database_is_set_aside_and_the_compile_proceeds(tuned, tmp_path, how, budget, capfd):
    from graphopt.compiler import compile_model
    from graphopt.codegen.tuning import RECORDS, open_json_database

    cache, folder = _copy_db(tuned, tmp_path)
    bad = _damage(folder, how)
    graph = _matmul_graph()
    if budget:  # the budget was spent: the database answers, and nothing is tuned again
        cm = compile_model(graph, opt_level=None, tune_trials=budget, cache_dir=cache)
    else:
        cm = _compile_without_tuning(graph, cache)
    _check(graph, cm)
    err = capfd.readouterr().err
    warnings = [ln for ln in err.splitlines() if "graphopt: warning:" in ln]
    assert warnings and str(folder) in warnings[0], err
    if bad is not None:  # the damaged line is kept aside, not deleted
        aside = "".join(p.read_text() for p in folder.iterdir() if ".damaged" in p.name)
        assert bad in aside
    assert len(open_json_database(folder).get_all_tuning_records()) >= 3
    assert capfd.readouterr().err.count("graphopt: warning:") == 0  # repaired once, clean after


def test_unreadable_database_moves_aside_whole(tuned, tmp_path, monkeypatch, capfd):
    """Should MetaSchedule still refuse the repaired files, both move aside whole and a new
    database starts (with a warning naming them)."""
    from tvm.s_tir import meta_schedule as ms

    from graphopt.codegen.tuning import RECORDS, WORKLOADS, open_json_database

    cache, folder = _copy_db(tuned, tmp_path)
    real = ms.database.JSONDatabase
    calls = []

    def flaky(*a, **k):
        calls.append(1)
        if len(calls) <= 2:
            raise RuntimeError("simulated: MetaSchedule cannot read it")
        return real(*a, **k)

    monkeypatch.setattr(ms.database, "JSONDatabase", flaky)
    db = open_json_database(folder)
    assert len(db.get_all_tuning_records()) == 0
    err = capfd.readouterr().err
    assert "moved it aside" in err and str(folder) in err
    assert sorted(p.name.split("-")[0] for p in folder.iterdir() if "damaged-" in p.name) == \
        [RECORDS + ".damaged", WORKLOADS + ".damaged"]


_TUNE_FOREVER = r"""
import sys
sys.path.insert(0, sys.argv[2])
from test_tuning import _matmul_graph
from graphopt.codegen import tuning
from graphopt.compiler import compile_model
tuning.TRIALS_PER_ITER = 2  # small batches: records land early and often
compile_model(_matmul_graph(), opt_level=None, tune_trials=16, cache_dir=sys.argv[1])
"""


@pytest.mark.slow  # minutes on a shared 2-core machine; the torn-file cases above run by default
def test_kill_9_during_tuning_leaves_a_database_the_next_compile_reads(tmp_path):
    from graphopt.compiler import compile_model
    from graphopt.codegen.tuning import RECORDS, database_dir, open_json_database

    cache = tmp_path / "cache"
    rec = database_dir("cpu", cache) / RECORDS
    proc = subprocess.Popen([sys.executable, "-c", _TUNE_FOREVER, str(cache), str(Path(__file__).parent)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(3000):  # wait (bounded) for the first records, then kill mid-tuning
            if proc.poll() is not None or (rec.exists() and rec.stat().st_size > 0):
                break
            time.sleep(0.1)
        assert proc.poll() is None, "the tuning process ended before it could be killed"
        assert rec.exists() and rec.stat().st_size > 0, "no records were written"
        time.sleep(0.5)  # kill in the middle of the next batch
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    graph = _matmul_graph()
    cm = compile_model(graph, opt_level=None, tune_trials=2, cache_dir=cache)  # resumes
    _check(graph, cm)
    assert len(open_json_database(database_dir("cpu", cache)).get_all_tuning_records()) >= 1
    _check(graph, compile_model(graph, opt_level=None, cache_dir=cache))


def test_cache_dir_env_var(tmp_path, monkeypatch):
    from graphopt.codegen.artifact import versions
    from graphopt.codegen.target import Target
    from graphopt.codegen.tuning import cache_root, database_dir

    monkeypatch.setenv("GRAPHOPT_CACHE_DIR", str(tmp_path / "env"))
    assert cache_root() == tmp_path / "env"
    assert cache_root(tmp_path / "arg") == tmp_path / "arg"
    d = database_dir("cpu")
    assert d.parent.name == Target.parse("cpu").key and versions()["tvm"] in d.name
    monkeypatch.delenv("GRAPHOPT_CACHE_DIR")
    assert str(cache_root()).endswith(".cache/graphopt/tuning")


def test_allocate_gives_heaviest_tasks_the_budget():
    from graphopt.codegen.tuning import TaskResult, allocate

    ts = [TaskResult("a", "a", 1, 0, default_ms=1.0), TaskResult("b", "b", 2, 0, default_ms=5.0),
          TaskResult("c", "c", 1, 0, default_ms=0.001)]
    plan = allocate(ts, 64, None)
    assert list(plan) == ["b", "a"] and plan["b"][0] > plan["a"][0] and sum(n for n, _ in plan.values()) <= 64
    plan = allocate(ts, 0, 1.0)
    assert plan["b"][1] > plan["a"][1] and abs(sum(s for _, s in plan.values()) - 60) < 1e-6


def test_a_second_tuner_waits_for_the_database_folder(tmp_path, capfd):
    """Two processes tuning into one database folder would interleave their writes: the
    second waits (and says so) until the first is done."""
    import threading
    import time

    from graphopt.codegen.tuning import folder_lock

    held, order = threading.Event(), []

    def first():
        with folder_lock(tmp_path / "db"):
            held.set()
            time.sleep(0.5)
            order.append("first done")

    th = threading.Thread(target=first)
    th.start()
    held.wait(5)
    with folder_lock(tmp_path / "db"):
        order.append("second in")
    th.join()
    assert order == ["first done", "second in"]
    assert "waiting for another process tuning" in capfd.readouterr().err
