"""MetaSchedule tuning: persistent database, reuse, failed candidates, numerics."""

from __future__ import annotations

import json
import time

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


def test_tune_writes_database_and_second_compile_reuses_it(tmp_path):
    from graphopt.codegen.compiler import compile_model
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

    t0 = time.perf_counter()
    again = compile_model(graph, opt_level=None, tune_trials=4, cache_dir=tmp_path)
    assert time.perf_counter() - t0 < 10
    assert again.report.tuning["reused"] and again.report.tuning["trials"] == 0
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
    from graphopt.codegen.compiler import compile_model

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
    from graphopt.codegen.tuning import RECORDS, WORKLOADS, open_json_database, repair_database

    (tmp_path / WORKLOADS).write_text('["0x1", {"a": 1}]\n["0x2", {"b"')  # torn last workload
    (tmp_path / RECORDS).write_text('[0, {"x": 1}]\n[1, {"y": 2}]\n[0, {"z"')
    fixed = repair_database(tmp_path)
    assert fixed["workloads"] == 1 and fixed["records"] == 2 and not fixed["reset"]
    assert (tmp_path / WORKLOADS).read_text() == '["0x1", {"a": 1}]\n'
    assert (tmp_path / RECORDS).read_text() == '[0, {"x": 1}]\n'
    # an empty database opens; a clean one is left alone
    empty = tmp_path / "empty"
    db = open_json_database(empty)
    assert len(db) == 0
    assert repair_database(empty) == {"workloads": 0, "records": 0, "reset": False}


def test_cache_dir_env_var(tmp_path, monkeypatch):
    from graphopt.codegen.artifact import versions
    from graphopt.codegen.target import target_key
    from graphopt.codegen.tuning import cache_root, database_dir

    monkeypatch.setenv("GRAPHOPT_CACHE_DIR", str(tmp_path / "env"))
    assert cache_root() == tmp_path / "env"
    assert cache_root(tmp_path / "arg") == tmp_path / "arg"
    d = database_dir("cpu")
    assert d.parent.name == target_key("cpu") and versions()["tvm"] in d.name
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
