"""The benchmark machinery on a tiny model: workers, interleaved timing, the table, JSON
and chart. Speed is never asserted; only that the figures are there and sane."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "examples" / "tiny_cnn.onnx"


@pytest.fixture(scope="module")
def suite_run(tmp_path_factory):
    from graphopt.bench.runner import Settings, run_suite, write_outputs

    out = tmp_path_factory.mktemp("bench")
    settings = Settings(rounds=3, warmup=1, workdir=str(out / "work"), keep_workdir=True)
    entries, meta = run_suite([str(TINY)], ["graphopt", "ort"], settings, log=lambda m: None,
                              command="pytest")
    paths = write_outputs(out, entries, meta)
    return entries, meta, paths


def test_suite_figures(suite_run):
    entries, meta, _ = suite_run
    by = {e.system: e for e in entries}
    assert set(by) == {"graphopt", "onnxruntime"}
    for e in entries:
        assert e.note == "" or "failed" not in e.note, e.note
        assert e.median_ms is not None and math.isfinite(e.median_ms) and e.median_ms > 0
        assert e.p25_ms <= e.median_ms <= e.p75_ms
        assert len(e.samples) == 3
        assert e.gflop and e.gflop > 0
        assert e.gflop_s and e.gflop_s > 0
        assert e.prepare_s is not None and e.prepare_s >= 0
        assert e.peak_mb and e.peak_mb > 10
        assert e.max_abs_err is not None and e.max_abs_err < 1e-3
    assert by["onnxruntime"].ratio == pytest.approx(1.0)
    assert by["graphopt"].ratio > 0
    peak = meta["peak"]["gflop_s"]
    assert peak and peak > 0.1
    assert by["onnxruntime"].pct_peak == pytest.approx(100 * by["onnxruntime"].gflop_s / peak)


def test_suite_outputs(suite_run):
    entries, meta, paths = suite_run
    md = Path(paths["md"]).read_text()
    assert "| tiny_cnn | onnxruntime |" in md and "1.00x" in md
    assert meta["machine"] in md and "Command: `pytest`" in md
    data = json.loads(Path(paths["json"]).read_text())
    assert {r["system"] for r in data["results"]} == {"graphopt", "onnxruntime"}
    assert data["meta"]["peak"]["gflop_s"] > 0
    assert paths["png"] is not None, "no chart: matplotlib (a test dependency) is missing"
    png = Path(paths["png"]).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_failure_is_a_note_not_a_crash(tmp_path):
    from graphopt.bench.cases import onnx_file_case
    from graphopt.bench.runner import Settings, bench_case

    case = onnx_file_case(TINY, tmp_path)
    case.onnx = str(tmp_path / "missing.onnx")
    (e,) = bench_case(case, ["onnxruntime"], Settings(rounds=1, peak=False), tmp_path, log=lambda m: None)
    assert e.median_ms is None and "failed" in e.note


def test_flops_counts_macs_twice():
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from graphopt.bench.flops import model_flops

    w = numpy_helper.from_array(np.ones((8, 3, 3, 3), np.float32), "w")
    m = numpy_helper.from_array(np.ones((8 * 4 * 4, 10), np.float32), "m")
    shape = numpy_helper.from_array(np.array([1, -1], np.int64), "s")
    g = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["c"], ["r"]),
         helper.make_node("Reshape", ["r", "s"], ["f"]),
         helper.make_node("MatMul", ["f", "m"], ["y"])],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])], [w, m, shape])
    fc = model_flops(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))
    assert fc.by_op["Conv"] == 2 * (8 * 4 * 4) * (3 * 3 * 3)
    assert fc.by_op["Relu"] == 8 * 4 * 4
    assert fc.by_op["MatMul"] == 2 * 128 * 10
    assert "Reshape" not in fc.by_op and not fc.unknown


def test_cli_bench(tmp_path, capsys):
    from graphopt.cli import main

    rc = main(["bench", str(TINY), "--rounds", "2", "--systems", "ort", "--no-peak", "-q", "--out", str(tmp_path)])
    assert rc == 0
    out = capsys.readouterr().out
    assert "| tiny_cnn | onnxruntime |" in out
    assert (tmp_path / "bench.json").is_file()


def test_cli_bench_missing_file(capsys):
    from graphopt.cli import main

    assert main(["bench", "no/such/model.onnx"]) == 1
    assert "no such file" in capsys.readouterr().err


def test_best_peer_column():
    """A graphopt row's ratio to the fastest system that is not graphopt's own, named."""
    from graphopt.bench.harness import Entry, best_peers, markdown

    rows = [Entry("m", "graphopt", median_ms=8.0), Entry("m", "onnxruntime", median_ms=10.0),
            Entry("m", "openvino", median_ms=5.0), Entry("m", "graphopt-tuned", median_ms=4.0),
            Entry("m", "onnxruntime-opt", note="failed: x")]
    assert best_peers(rows)["m"].system == "openvino"
    md = markdown(rows)
    assert "| m | graphopt | 8.00 | - | 0.80x | 1.60x (openvino) |" in md
    assert "| m | openvino | 5.00 | - | 0.50x | - |" in md


def test_transformer_optimizer_applies_to_transformer_cases_only():
    from graphopt.bench.cases import Case
    from graphopt.bench.systems import applies, canonical

    plain = Case("cnn", "x.onnx", "x.npz", ["x"])
    bert = Case("bert", "b.onnx", "b.npz", ["ids"], transformer={"model_type": "bert", "num_heads": 2,
                                                                  "hidden_size": 64})
    assert canonical("ort-opt") == "onnxruntime-opt"
    assert not applies("onnxruntime-opt", plain) and applies("onnxruntime-opt", bert)
    assert applies("onnxruntime", plain)
