"""Det and NonMaxSuppression (codegen/lower/linalg.py, vision.py) against the oracle
(onnxruntime, no optimizations); float64 Det against numpy (onnxruntime has no double Det).
Several nodes share one graph (one TVM build); the property tests compile one model with
symbolic dims and run it on every example."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import helper

from codegen_testutil import check_against_oracle, compile_graph
from test_lowering_extra import check, make_graph

from graphopt.errors import GraphoptError

N = helper.make_node
RNG = np.random.default_rng(0)


def _well_conditioned(rng, batch, m, dt=np.float32):
    """Q1 diag(s) Q2 with s in [0.5, 2]: |det| = prod(s), pivots anywhere."""
    def q():
        return np.linalg.qr(rng.standard_normal((*batch, m, m)))[0]

    s = rng.uniform(0.5, 2.0, (*batch, 1, m)) * rng.choice([-1, 1], (*batch, 1, m))
    return ((q() * s) @ q()).astype(dt)


# --------------------------------------------------------------------------- Det
def test_det_2d_batched_singular_float16():
    x2 = RNG.standard_normal((4, 4)).astype(np.float32)
    xb = RNG.standard_normal((2, 3, 5, 5)).astype(np.float32)
    sing = RNG.standard_normal((4, 3, 3)).astype(np.float32)
    sing[0, 2] = sing[0, 0] * 2  # dependent rows: an exactly zero pivot after one step
    sing[1, :, 1] = 0  # a zero column: no pivot at all
    sing[2] = 0
    sing[3] = np.array([[1, 2, 3], [2, 4, 6], [1, 0, 1]], np.float32)
    piv = np.array([[[0, 0, 1], [0, 1, 0], [1, 0, 0]], [[0, 2, 0], [3, 0, 0], [0, 0, 4]]], np.float32)  # swaps
    x16 = _well_conditioned(RNG, (3,), 4, np.float16)
    nodes = [N("Det", [n], [f"d_{n}"]) for n in ("x2", "xb", "sing", "piv", "x16")]
    m = check(nodes, {"x2": x2, "xb": xb, "sing": sing, "piv": piv, "x16": x16},
              [f"d_{n}" for n in ("x2", "xb", "sing", "piv", "x16")])
    d = m.run(x2=x2, xb=xb, sing=sing, piv=piv, x16=x16)
    assert d[0].shape == () and d[1].shape == (2, 3)
    assert np.all(d[2][:3] == 0)  # exactly, not merely close
    np.testing.assert_allclose(d[3], [-1.0, -24.0])


def test_det_float64_against_numpy():
    x = RNG.standard_normal((3, 2, 6, 6))
    g = make_graph([N("Det", ["x"], ["y"])], {"x": x}, ["y"])
    y = compile_graph(g).run(x=x)[0]
    assert y.dtype == np.float64
    np.testing.assert_allclose(y, np.linalg.det(x), rtol=1e-12, atol=1e-12)


@functools.lru_cache(maxsize=None)
def _det_symbolic():
    """Det over [n, m, m] with both dims symbolic: one build for every size."""
    g = make_graph([N("Det", ["x"], ["y"])], {"x": np.zeros((2, 3, 3), np.float32)}, ["y"],
                   shapes={"x": ["n", "m", "m"]})
    return g, compile_graph(g)


def test_det_symbolic_batch_two_sizes():
    g, model = _det_symbolic()
    for shape in [(2, 3, 3), (7, 5, 5), (1, 17, 17), (0, 4, 4)]:
        check_against_oracle(g, {"x": RNG.standard_normal(shape).astype(np.float32)}, model=model)


@settings(max_examples=10, deadline=None)
@given(n=st.integers(1, 4), m=st.integers(1, 7), seed=st.integers(0, 2 ** 32 - 1))
def test_det_random_well_conditioned(n, m, seed):
    g, model = _det_symbolic()
    check_against_oracle(g, {"x": _well_conditioned(np.random.default_rng(seed), (n,), m)}, model=model)


# --------------------------------------------------------------------------- NonMaxSuppression
# The onnx conformance cases' boxes: two clusters of three overlapping boxes and a loner.
BOXES = np.array([[[0.0, 0.0, 1.0, 1.0], [0.0, 0.1, 1.0, 1.1], [0.0, -0.1, 1.0, 0.9],
                   [0.0, 10.0, 1.0, 11.0], [0.0, 10.1, 1.0, 11.1], [0.0, 100.0, 1.0, 101.0]]], np.float32)
SCORES = np.array([[[0.9, 0.75, 0.6, 0.95, 0.5, 0.3]]], np.float32)


def _nms_consts():
    return {"m3": np.array([3], np.int64), "m2": np.array([2], np.int64), "m0": np.array([0], np.int64),
            "mneg": np.array([-4], np.int64), "m100": np.array([100], np.int64),
            "iou5": np.array([0.5], np.float32), "iou0": np.array([0.0], np.float32),
            "iou1": np.array([1.0], np.float32), "st0": np.array([0.0], np.float32),
            "iou_third": np.array([1 / 3], np.float32), "st_eq": np.array([0.75], np.float32),
            "st4": np.array([0.4], np.float32), "iou_scalar": np.array(0.5, np.float32),
            "m_scalar": np.array(3, np.int64)}


def test_nms_conformance_like_cases():
    flipped = BOXES[..., [2, 3, 0, 1]].copy()
    flipped[0, 1] = flipped[0, 1, [0, 3, 2, 1]]  # mix both flips
    yx = BOXES[0]
    center = np.stack([(yx[:, 1] + yx[:, 3]) / 2, (yx[:, 0] + yx[:, 2]) / 2, yx[:, 3] - yx[:, 1],
                       yx[:, 2] - yx[:, 0]], 1)[None].astype(np.float32)
    same = np.tile(np.array([[[0.0, 0.0, 1.0, 1.0]]], np.float32), (1, 10, 1))
    same_s = np.full((1, 1, 10), 0.9, np.float32)
    two_b = np.concatenate([BOXES, BOXES[:, ::-1]], 0)
    classes = np.stack([SCORES[0, 0], SCORES[0, 0][::-1]])
    two_bc = np.stack([classes, classes * 0.5]).astype(np.float32)  # [2 batches, 2 classes, 6]
    cases = [  # (name, inputs, attrs)
        ("by_iou", ["b", "s", "m3", "iou5", "st0"], {}),
        ("by_score", ["b", "s", "m3", "iou5", "st4"], {}),
        ("score_at_threshold", ["b", "s", "m100", "iou1", "st_eq"], {}),  # 0.75 is not > 0.75
        ("no_score_th", ["b", "s", "m100", "iou5"], {}),
        ("iou_absent", ["b", "s", "m100"], {}),  # iou 0: any overlap suppresses
        ("iou_zero", ["b", "s", "m100", "iou0"], {}),
        ("iou_one", ["b", "s", "m100", "iou1"], {}),  # nothing exceeds 1: all kept, by score
        ("limit", ["b", "s", "m2", "iou5", "st0"], {}),
        ("max0", ["b", "s", "m0", "iou5", "st0"], {}),
        ("max_neg", ["b", "s", "mneg", "iou5"], {}),
        ("max_absent", ["b", "s"], {}),
        ("scalars", ["b", "s", "m_scalar", "iou_scalar"], {}),
        ("flipped", ["bf", "s", "m3", "iou5", "st0"], {}),
        ("center", ["bc", "s", "m3", "iou5", "st0"], {"center_point_box": 1}),
        ("identical", ["same", "same_s", "m3", "iou5", "st0"], {}),
        ("identical_iou1", ["same", "same_s", "m100", "iou1"], {}),  # IoU 1 is not > 1: all kept
        ("at_threshold", ["edge", "edge_s", "m100", "iou5"], {}),  # IoU exactly 0.5: kept
        # IoU 1/3 in reals; onnxruntime's float32 (areas from the corners, not w*h) exceeds it
        ("center_edge", ["cedge", "edge_s", "m100", "iou_third"], {"center_point_box": 1}),
        ("batches_classes", ["b2", "s2", "m2", "iou5", "st0"], {}),
    ]
    nodes = [N("NonMaxSuppression", ins, [name], **attrs) for name, ins, attrs in cases]
    nodes.append(N("Shape", ["by_iou"], ["by_iou_shape"]))  # the data-dependent dim flows on
    outs = [name for name, _, _ in cases] + ["by_iou_shape"]
    edge = np.array([[[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 0.5]]], np.float32)
    cedge = np.array([[[0.7, 0.6, 0.7, 1.0], [0.7, 1.0, 0.7, 0.6]]], np.float32)
    edge_s = np.array([[[0.9, 0.8]]], np.float32)
    inputs = {"b": BOXES, "s": SCORES, "bf": flipped, "bc": center, "same": same, "same_s": same_s,
              "b2": two_b, "s2": two_bc, "edge": edge, "cedge": cedge, "edge_s": edge_s}
    g = make_graph(nodes, inputs, outs, _nms_consts())
    model = check_against_oracle(g, inputs)
    got = dict(zip(outs, model.run(**inputs)))
    assert got["by_iou"].tolist() == [[0, 0, 3], [0, 0, 0], [0, 0, 5]]
    assert got["max0"].shape == (0, 3) and got["max_absent"].shape == (0, 3)
    assert got["by_iou_shape"].tolist() == [3, 3]
    assert got["score_at_threshold"][:, 2].tolist() == [3, 0]
    assert len(got["identical_iou1"]) == 10 and len(got["at_threshold"]) == 2 and len(got["center_edge"]) == 1


@functools.lru_cache(maxsize=None)
def _nms_runtime(center: int):
    """NMS with every input a graph input (run-time thresholds) and symbolic B, C, N."""
    ins = {"b": np.zeros((1, 5, 4), np.float32), "s": np.zeros((1, 2, 5), np.float32),
           "m": np.zeros((1,), np.int64), "iou": np.zeros((1,), np.float32), "st": np.zeros((1,), np.float32)}
    g = make_graph([N("NonMaxSuppression", ["b", "s", "m", "iou", "st"], ["y"], center_point_box=center),
                    N("NonMaxSuppression", ["b", "s", "m", "iou"], ["y_all"], center_point_box=center)],
                   ins, ["y", "y_all"], shapes={"b": ["B", "N", 4], "s": ["B", "C", "N"]})
    return g, compile_graph(g)


@settings(max_examples=10, deadline=None)
@given(center=st.sampled_from([0, 1]), b=st.integers(1, 3), c=st.integers(1, 3), n=st.integers(0, 30),
       grid=st.sampled_from([0.1, 0.25, 1.0]), max_out=st.integers(-1, 8),
       iou=st.sampled_from([0.0, 0.1, 1 / 3, 0.5, 1.0]), score_th=st.sampled_from([-1.0, 0.0, 0.25]),
       seed=st.integers(0, 2 ** 32 - 1))
def test_nms_random_boxes_runtime_thresholds(center, b, c, n, grid, max_out, iou, score_th, seed):
    """Boxes on a coarse grid and scores in quarters: ties in score and IoUs at the threshold."""
    rng = np.random.default_rng(seed)
    boxes = (np.round(rng.uniform(-1, 1, (b, n, 4)) / grid) * grid).astype(np.float32)
    if center:
        boxes[..., 2:] = np.abs(boxes[..., 2:])
    scores = (np.round(rng.uniform(-1, 1, (b, c, n)) * 4) / 4).astype(np.float32)
    g, model = _nms_runtime(center)
    feeds = {"b": boxes, "s": scores, "m": np.array([max_out], np.int64), "iou": np.array([iou], np.float32),
             "st": np.array([score_th], np.float32)}
    check_against_oracle(g, feeds, model=model)


def test_nms_nan_scores_follow_the_oracle_heap():
    """NaN scores make onnxruntime's priority-queue order depend on its heap; the kernel keeps
    the same heap."""
    g, model = _nms_runtime(0)
    rng = np.random.default_rng(1)
    for _ in range(20):
        boxes = np.round(rng.uniform(-1, 1, (2, 20, 4)), 1).astype(np.float32)
        scores = (np.round(rng.uniform(-1, 1, (2, 2, 20)) * 4) / 4).astype(np.float32)
        scores[rng.uniform(size=scores.shape) < 0.2] = np.nan
        feeds = {"b": boxes, "s": scores, "m": np.array([20], np.int64), "iou": np.array([0.3], np.float32),
                 "st": np.array([-1.0], np.float32)}
        check_against_oracle(g, feeds, model=model)


@pytest.mark.parametrize("iou, attrs, match", [(1.5, {}, "iou_threshold must be in"),
                                                (0.5, {"center_point_box": 2}, "center_point_box")])
def test_nms_refused_configurations(iou, attrs, match):
    g = make_graph([N("NonMaxSuppression", ["b", "s", "m", "iou"], ["y"], **attrs)], {"b": BOXES, "s": SCORES},
                   ["y"], {"m": np.array([3], np.int64), "iou": np.array([iou], np.float32)})
    with pytest.raises(GraphoptError, match=match):
        compile_graph(g)
