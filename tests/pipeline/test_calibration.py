"""Calibration (`graphopt.calibration`): each method's range against numpy over the same
samples (min-max exactly, percentile within a histogram bin, entropy's clipping of
outliers); the table's JSON round trip, its errors naming the file, and u8 parameters that
keep 0 exact; `graphopt.quantize(static=True)` from torch tensors and a torch DataLoader."""

from __future__ import annotations

import numpy as np
import pytest

import graphopt
from graphopt.calibration import CalibrationTable, calibrate, calibration_points, entropy_threshold
from graphopt.ir import DType, Graph, TensorData, TensorType
from graphopt.ops import build

F32 = DType.FLOAT32


def two_points(K: int = 32) -> Graph:
    """x -> MatMul(w1) -> y; Relu(2 x) -> MatMul(w2) -> z: one graph input and one computed
    activation read by matmuls."""
    rng = np.random.default_rng(0)
    g = Graph("g", {"": 21})
    x = g.add_input("x", TensorType(F32, (4, K)))
    w1 = g.add_constant("w1", TensorData.from_numpy(rng.standard_normal((K, 8)).astype(np.float32)))
    w2 = g.add_constant("w2", TensorData.from_numpy(rng.standard_normal((K, 8)).astype(np.float32)))
    two = g.add_constant("two", TensorData.from_numpy(np.float32(2)))
    h = build(g, "Relu", [build(g, "Mul", [x, two], name="double").output], name="relu").output
    g.outputs = [build(g, "MatMul", [x, w1], name="mm1").output, build(g, "MatMul", [h, w2], name="mm2").output]
    return g


def samples(n: int, seed: int = 0, scale: float = 1.0) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [{"x": (scale * rng.standard_normal((4, 32))).astype(np.float32)} for _ in range(n)]


def test_points_are_the_float_activations_of_matmuls():
    g = two_points()
    h = next(n for n in g.nodes if n.name == "relu").output.name
    assert calibration_points(g) == ["x", h]


def test_minmax_is_numpys_over_all_samples():
    g = two_points()
    s = samples(5)
    t = calibrate(g, s, "minmax")
    xs = np.stack([d["x"] for d in s])
    h = next(n for n in g.nodes if n.name == "relu").output.name
    assert t.ranges["x"] == (float(xs.min()), float(xs.max()))
    assert t.ranges[h] == (0.0, float(np.maximum(2 * xs, 0).max()))
    assert t.samples == 5 and t.method == "minmax"


def test_percentile_is_numpys_within_a_bin():
    g = two_points()
    s = samples(40)
    p = 99.0
    t = calibrate(g, s, "percentile", percentile=p, values=["x"])
    xs = np.concatenate([d["x"].ravel() for d in s])
    lo, hi = np.quantile(xs, [1 - p / 100, p / 100])
    width = (xs.max() - xs.min()) / 2048
    assert abs(t.ranges["x"][0] - lo) <= 2 * width and abs(t.ranges["x"][1] - hi) <= 2 * width, (t.ranges, lo, hi)
    assert xs.min() < t.ranges["x"][0] < t.ranges["x"][1] < xs.max()


def test_entropy_clips_outliers_and_keeps_a_uniform_range():
    rng = np.random.default_rng(0)
    bulk = np.abs(rng.standard_normal(200_000))
    with_outliers = np.concatenate([bulk, [60.0, 80.0, 100.0]])
    hist, edges = np.histogram(with_outliers, bins=2048, range=(0, with_outliers.max()))
    t = entropy_threshold(hist, edges)
    assert 2.5 < t < 20, t     # past most of the bulk, far short of the outliers
    uniform = rng.uniform(0, 5, 200_000)
    hist, edges = np.histogram(uniform, bins=2048, range=(0, 5))
    assert entropy_threshold(hist, edges) > 0.95 * 5


def test_entropy_range_is_symmetric_and_inside_the_observed_one():
    g = two_points()
    s = samples(8)
    s[0]["x"][0, 0] = 400.0      # one outlier
    t = calibrate(g, s, "entropy", values=["x"])
    lo, hi = t.ranges["x"]
    xs = np.stack([d["x"] for d in s])
    assert xs.min() <= lo < 0 < hi < 100, (lo, hi)
    assert hi == -lo or lo == xs.min()


def test_table_round_trips_and_its_errors_name_the_file(tmp_path):
    t = CalibrationTable("entropy", 3, {"a": (-1.5, 2.0), "b": (0.0, 0.25)})
    p = tmp_path / "t.json"
    t.save(p)
    assert CalibrationTable.load(p) == t
    p.write_text('{"ranges": {}}')
    with pytest.raises(graphopt.GraphoptError, match=r"t.json: not a graphopt calibration table"):
        CalibrationTable.load(p)
    p.write_text('{"format": "graphopt-calibration", "version": 7}')
    with pytest.raises(graphopt.GraphoptError, match=r"t.json: calibration table version 7"):
        CalibrationTable.load(p)
    with pytest.raises(graphopt.GraphoptError, match=r"missing.json: cannot read"):
        CalibrationTable.load(tmp_path / "missing.json")


@pytest.mark.parametrize("lo,hi,zero", [(0.5, 2.0, 0), (-1.0, -0.5, 255), (-1.0, 3.0, 64), (0.0, 0.0, 0)])
def test_qparams_stretch_the_range_to_hold_zero_exactly(lo, hi, zero):
    qp = CalibrationTable("minmax", 1, {"v": (lo, hi)}).qparams("v")
    assert qp.zero == zero
    span = max(hi, 0) - min(lo, 0)
    assert qp.scale == (np.float32(span / 255) if span else 1.0)
    assert CalibrationTable("minmax", 1, {}).qparams("v") is None


def test_unknown_method_and_empty_samples_are_errors():
    g = two_points()
    with pytest.raises(graphopt.GraphoptError, match="calibration method 'kl' is not one of"):
        calibrate(g, samples(1), "kl")
    with pytest.raises(graphopt.GraphoptError, match="at least one sample"):
        calibrate(g, [], "minmax")
    with pytest.raises(graphopt.GraphoptError, match="no value named 'nope'"):
        calibrate(g, samples(1), values=["nope"])


def test_quantize_static_from_torch_tensors_and_a_dataloader():
    torch = pytest.importorskip("torch")
    g = two_points()
    rng = np.random.default_rng(1)
    rows = [{"x": torch.from_numpy(rng.standard_normal(32).astype(np.float32))} for _ in range(12)]
    loader = torch.utils.data.DataLoader(rows, batch_size=4)   # collates dicts into x [4, 32]
    q, report = graphopt.quantize(g, loader, static=True, min_elements=1)
    assert report.table.samples == 3 and report.samples == 3
    xs = torch.stack([r["x"] for r in rows]).numpy()
    assert report.table.ranges["x"] == (float(xs.min()), float(xs.max()))
    assert [n.op_type for n in q.nodes].count("QuantizeLinear") == 2
    assert all(a.sqnr_db > 30 for a in report.activations), report.activations
    assert all(o.cosine > 0.999 for o in report.outputs), report.outputs
    q2, _ = graphopt.quantize(g, [{"x": torch.from_numpy(xs[:4])}], static=True, min_elements=1)
    assert [n.op_type for n in q2.nodes].count("QuantizeLinear") == 2


def test_quantize_static_needs_data_and_excludes_dynamic():
    with pytest.raises(graphopt.GraphoptError, match="needs calibration data"):
        graphopt.quantize(two_points(), static=True)
    with pytest.raises(graphopt.GraphoptError, match="either statically .* or dynamically"):
        graphopt.quantize(two_points(), samples(1), static=True, dynamic=True)
