"""Calibration: the ranges of a float model's matmul activations over sample inputs, from
which static quantization (`passes.quantize_static`) takes each activation's fixed u8 scale
and zero point.

The points are the float32 A inputs of MatMul and Gemm (what the integer kernel reads).
The model runs on onnxruntime with its optimizations off (so every value keeps its name),
those values as extra outputs, in two sweeps over the samples: the first takes each
value's min and max, the second a histogram over that range (only for the methods that
need one). The methods (onnxruntime's calibrators' names):

- ``minmax``: the smallest and largest value seen;
- ``percentile``: the values at ``percentile`` and ``100 - percentile`` of the combined
  histogram (each tail loses ``100 - percentile`` percent of the mass, as onnxruntime's
  asymmetric percentile);
- ``entropy``: the threshold ``t`` on ``|x|`` whose clipped distribution, quantized to 128
  levels, has the least KL divergence from the observed one (TensorRT's search, 2048
  bins), the range then ``[max(min, -t), min(max, t)]``.

A `CalibrationTable` holds the result and is saved as JSON so that a calibration is done
once and reused (``graphopt quantize --table``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Optional, Sequence

import numpy as np

from .errors import GraphoptError
from .ir import DType, Graph

METHODS = ("minmax", "percentile", "entropy")
FORMAT = "graphopt-calibration"
VERSION = 1


@dataclass(frozen=True)
class QParams:
    """u8 per-tensor quantization of one activation: ``x ~ (q - zero) * scale``."""

    scale: float
    zero: int


@dataclass(frozen=True)
class CalibrationTable:
    method: str
    samples: int
    ranges: Mapping[str, tuple[float, float]] = field(default_factory=dict)  # value name -> (lo, hi)

    def qparams(self, name: str) -> Optional[QParams]:
        """The u8 scale and zero point of value ``name``'s range, stretched to hold 0 (so
        that 0, padding and ReLU's floor, is exact); None when the table has no range for it."""
        r = self.ranges.get(name)
        if r is None:
            return None
        lo, hi = min(float(r[0]), 0.0), max(float(r[1]), 0.0)
        if hi - lo <= 0 or not math.isfinite(hi - lo):
            return QParams(1.0, 0)
        scale = float(np.float32((hi - lo) / 255.0))
        return QParams(scale, int(np.clip(round(-lo / scale), 0, 255)))

    def to_json(self) -> dict:
        return {"format": FORMAT, "version": VERSION, "method": self.method, "samples": self.samples,
                "ranges": {k: [float(lo), float(hi)] for k, (lo, hi) in self.ranges.items()}}

    def save(self, path) -> None:
        """Write the table as JSON (atomically: a failure leaves no file)."""
        from .util.files import atomic_write_text

        atomic_write_text(Path(path), json.dumps(self.to_json(), indent=1) + "\n")

    @classmethod
    def load(cls, path) -> "CalibrationTable":
        try:
            d = json.loads(Path(path).read_text())
        except (OSError, ValueError) as e:
            raise GraphoptError(f"{path}: cannot read the calibration table: {e}") from None
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise GraphoptError(f"{path}: not a graphopt calibration table (no \"format\": \"{FORMAT}\")")
        if d.get("version") != VERSION:
            raise GraphoptError(f"{path}: calibration table version {d.get('version')!r}; this graphopt reads "
                                f"version {VERSION}")
        ranges = {}
        for k, v in (d.get("ranges") or {}).items():
            if not (isinstance(v, list) and len(v) == 2 and all(isinstance(x, (int, float)) for x in v)
                    and v[0] <= v[1]):
                raise GraphoptError(f"{path}: the range of {k!r} is {v!r}, not [lo, hi] with lo <= hi")
            ranges[k] = (float(v[0]), float(v[1]))
        return cls(str(d.get("method", "?")), int(d.get("samples", 0)), ranges)


def calibration_points(graph: Graph) -> list[str]:
    """Names of the float32 activations MatMul/Gemm read as A (computed values or graph
    inputs, not constants), in graph order, each once."""
    seen: dict[str, None] = {}
    for n in graph.nodes:
        if n.domain or n.op_type not in ("MatMul", "Gemm") or not n.inputs or n.inputs[0] is None:
            continue
        if n.op_type == "Gemm" and n.attr("transA", 0):
            continue
        a = n.inputs[0]
        if not a.is_constant and a.type.dtype is DType.FLOAT32:
            seen.setdefault(a.name, None)
    return list(seen)


def observe(graph: Graph, values: Sequence[str], samples: Iterable[Mapping[str, np.ndarray]]
            ) -> Iterator[dict[str, np.ndarray]]:
    """For each sample, {value name: its array} of ``values`` of float ``graph`` (top
    level), run on onnxruntime with optimizations off (one session for all samples)."""
    from .frontend.onnx_export import export_onnx
    from .frontend.reference import oracle_session
    from .ir.clone import clone_graph

    g = clone_graph(graph)
    have = {v.name: v for n in g.nodes for v in n.outputs if v is not None}
    have.update({v.name: v for v in g.inputs})
    missing = [v for v in values if v not in have]
    if missing:
        raise GraphoptError(f"graph {graph.name!r} has no value named {missing[0]!r} to calibrate")
    names = {o.name for o in g.outputs}
    g.outputs = list(g.outputs) + [have[v] for v in values if v not in names]
    sess = oracle_session(export_onnx(g).SerializeToString())
    inputs = [v.name for v in g.inputs]
    for i, s in enumerate(samples):
        try:
            res = sess.run(values, {k: s[k] for k in inputs})
        except Exception as e:
            raise GraphoptError(f"onnxruntime could not run graph {graph.name!r} on calibration sample {i}: "
                                f"{str(e).strip().splitlines()[0]}") from e
        yield dict(zip(values, (np.asarray(r) for r in res)))


def calibrate(graph: Graph, samples: Sequence[Mapping[str, np.ndarray]], method: str = "minmax", *,
              values: Optional[Sequence[str]] = None, percentile: float = 99.99, bins: int = 2048
              ) -> CalibrationTable:
    """The `CalibrationTable` of ``values`` (default `calibration_points`) of float
    ``graph`` over ``samples`` (input dicts by name), by ``method`` (see the module)."""
    if method not in METHODS:
        raise GraphoptError(f"calibration method {method!r} is not one of {', '.join(METHODS)}")
    if method == "percentile" and not 50.0 < percentile <= 100.0:
        raise GraphoptError(f"percentile={percentile} is not in (50, 100]")
    if not samples:
        raise GraphoptError("calibration needs at least one sample")
    values = list(calibration_points(graph) if values is None else values)
    if not values:
        return CalibrationTable(method, len(samples), {})
    lo = {v: math.inf for v in values}
    hi = {v: -math.inf for v in values}
    for seen in observe(graph, values, samples):
        for v, a in seen.items():
            if a.size:
                lo[v] = min(lo[v], float(np.min(a)))
                hi[v] = max(hi[v], float(np.max(a)))
    for v in values:
        if not (math.isfinite(lo[v]) and math.isfinite(hi[v])):
            raise GraphoptError(f"activation {v!r} of graph {graph.name!r} is empty or not finite over the "
                                f"calibration samples (min {lo[v]}, max {hi[v]})")
    if method == "minmax":
        return CalibrationTable(method, len(samples), {v: (lo[v], hi[v]) for v in values})
    # The second sweep: one histogram a value, over its whole range (|x| for entropy).
    edges = {v: (np.linspace(lo[v], hi[v], bins + 1) if method == "percentile"
                 else np.linspace(0.0, max(abs(lo[v]), abs(hi[v])), bins + 1)) for v in values}
    hist = {v: np.zeros(bins, np.int64) for v in values}
    for seen in observe(graph, values, samples):
        for v, a in seen.items():
            x = a.ravel().astype(np.float64)
            if method == "entropy":
                x = np.abs(x)
            if edges[v][-1] > edges[v][0]:
                hist[v] += np.histogram(x, bins=edges[v])[0]
    ranges = {}
    for v in values:
        if edges[v][-1] <= edges[v][0]:
            ranges[v] = (lo[v], hi[v])
        elif method == "percentile":
            ranges[v] = percentile_range(hist[v], edges[v], percentile)
        else:
            t = entropy_threshold(hist[v], edges[v])
            ranges[v] = (max(lo[v], -t), min(hi[v], t))
    return CalibrationTable(method, len(samples), ranges)


def percentile_range(hist: np.ndarray, edges: np.ndarray, percentile: float) -> tuple[float, float]:
    """The bin edges where the histogram's cumulative share passes ``1 - p`` and ``p``
    (p = percentile / 100)."""
    cdf = np.cumsum(hist, dtype=np.float64) / max(int(hist.sum()), 1)
    p = percentile / 100.0
    left = int(np.searchsorted(cdf, 1.0 - p, side="right"))
    right = int(np.searchsorted(cdf, p, side="left"))
    return float(edges[min(left, len(hist) - 1)]), float(edges[min(right + 1, len(hist))])


def _smooth(p: np.ndarray, eps: float = 1e-4) -> np.ndarray:
    """A distribution with no zero bins: eps moved to each empty bin from the others
    (onnxruntime's smooth_distribution)."""
    zeros = p == 0
    nz = p.size - int(zeros.sum())
    if nz == 0:
        return p
    return p + eps * zeros - (eps * int(zeros.sum()) / nz) * ~zeros


def entropy_threshold(hist: np.ndarray, edges: np.ndarray, levels: int = 128) -> float:
    """TensorRT's KL threshold on a histogram of |x|: for each candidate end bin i
    (levels..bins), P = the first i bins with the rest of the mass folded into the last,
    Q = those i bins merged into ``levels`` and spread back over their non-empty bins;
    the edge of the i with the least KL(P || Q)."""
    bins = len(hist)
    if bins <= levels or hist.sum() == 0:
        return float(edges[-1])
    h = hist.astype(np.float64)
    tail = np.cumsum(h[::-1])[::-1]   # tail[i] = sum of h[i:]
    best_kl, best_i = math.inf, bins
    for i in range(levels, bins + 1):
        p = h[:i].copy()
        if i < bins:
            p[i - 1] += tail[i]
        nonzero = h[:i] != 0
        group = (np.arange(i) * levels) // i
        sums = np.bincount(group, weights=h[:i], minlength=levels)
        count = np.bincount(group, weights=nonzero.astype(np.float64), minlength=levels)
        q = np.where(nonzero, sums[group] / np.maximum(count[group], 1.0), 0.0)
        if p.sum() == 0 or q.sum() == 0:
            continue
        ps, qs = _smooth(p / p.sum()), np.maximum(_smooth(q / q.sum()), 1e-12)
        m = ps > 0
        kl = float(np.sum(ps[m] * np.log(ps[m] / qs[m])))
        if kl < best_kl:
            best_kl, best_i = kl, i
    return float(edges[best_i])
