"""`graphopt.quantize`: int8/int4 weight quantization of a model, optionally with int8
activations (run-time, or static from a calibration), with an accuracy report.

The quantized model is ordinary QDQ ONNX (DequantizeLinear of int8/int4 weights feeding the
matmuls) that onnxruntime runs, and `graphopt compile` turns each such matmul into its
integer kernel (`codegen.kernels.qdense`). The report compares against the float model:
per weight the SQNR of its dequantized value (20 log10(||w|| / ||w - dq(q(w))||), the
measure of onnxruntime's qdq_loss_debug), and per output, run on onnxruntime (optimizations
off) for both models on the same inputs, the cosine, max error and, for outputs whose last
axis looks like classes, how often the argmax agrees; with static activations also per
activation its calibrated range and the SQNR of its quantized value on the report's
samples.

Static activations (`graphopt.calibration` then `passes.quantize_static`) are calibrated
on every sample of ``calibration_data``; the report compares on the first
``report_samples`` of them (calibration and report on the same samples: a held-out set
is the caller's to pass in a second run).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence, Union

import numpy as np

from .calibration import METHODS, CalibrationTable, calibrate, observe
from .errors import GraphoptError
from .ir import Graph

WEIGHT_MODES = ("int8", "int4")


@dataclass(frozen=True)
class WeightReport:
    node: str           # the MatMul/Gemm reading the weight
    weight: str         # the float weight's name
    shape: tuple
    block: int          # rows of K a scale covers (K: one per output column)
    sqnr_db: float


@dataclass(frozen=True)
class OutputReport:
    name: str
    cosine: float       # the smallest over the samples (flattened per sample)
    max_abs_err: float
    top1_agreement: Optional[float]  # share of rows whose argmax over the last axis agrees


@dataclass(frozen=True)
class ActivationReport:
    value: str          # the float activation
    lo: float           # its calibrated range
    hi: float
    scale: float        # its u8 quantization
    zero: int
    sqnr_db: float      # of dq(q(x)) against x over the report's samples


@dataclass
class QuantReport:
    mode: str
    weights: list[WeightReport] = field(default_factory=list)
    outputs: list[OutputReport] = field(default_factory=list)
    samples: int = 0
    activations: list[ActivationReport] = field(default_factory=list)
    table: Optional[CalibrationTable] = None   # the calibration static activations used

    def summary(self) -> str:
        lines = [f"quantized {len(self.weights)} weights to {self.mode}"]
        if self.weights:
            s = sorted(w.sqnr_db for w in self.weights)
            lines.append(f"  weight SQNR dB: min {s[0]:.1f}, median {s[len(s) // 2]:.1f}, max {s[-1]:.1f}")
        if self.activations:
            a = sorted(self.activations, key=lambda r: r.sqnr_db)
            lines.append(f"  activation SQNR dB ({len(a)} activations): min {a[0].sqnr_db:.1f} (%{a[0].value}), "
                         f"median {a[len(a) // 2].sqnr_db:.1f}, max {a[-1].sqnr_db:.1f}")
        for o in self.outputs:
            top1 = f", top-1 agreement {o.top1_agreement * 100:.1f}%" if o.top1_agreement is not None else ""
            lines.append(f"  output {o.name}: cosine {o.cosine:.6f}, max abs error {o.max_abs_err:.3g}{top1} "
                         f"({self.samples} samples)")
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {"mode": self.mode, "samples": self.samples,
                "weights": [w.__dict__ | {"shape": list(w.shape)} for w in self.weights],
                "outputs": [o.__dict__ for o in self.outputs],
                "activations": [a.__dict__ for a in self.activations],
                "calibration": None if self.table is None else {"method": self.table.method,
                                                                "samples": self.table.samples}}


def _samples(graph: Graph, calibration_data, limit: Optional[int], seed: int) -> list[dict]:
    """Input dicts for the report: from ``calibration_data`` (an iterable of dicts by input
    name, numpy or torch; or one dict of arrays stacked on a new leading axis, as an .npz
    holds them), else one random sample."""
    from .testing.oracle import random_inputs

    names = [v.name for v in graph.inputs]
    if calibration_data is None:
        return [random_inputs(graph, seed=seed)]
    if isinstance(calibration_data, Mapping):
        missing = [n for n in names if n not in calibration_data]
        if missing:
            raise GraphoptError(f"calibration data has no array for input(s) {', '.join(missing)}")
        count = min(len(calibration_data[n]) for n in names)
        it: Iterable = ({n: calibration_data[n][i] for n in names} for i in range(count))
    else:
        it = calibration_data
    out = []
    for sample in it:
        if limit is not None and len(out) >= limit:
            break
        if not isinstance(sample, Mapping):
            raise GraphoptError(f"calibration sample {len(out)} is a {type(sample).__name__}, not a dict by input name")
        missing = [n for n in names if n not in sample]
        if missing:
            raise GraphoptError(f"calibration sample {len(out)} has no array for input(s) {', '.join(missing)}")
        arrs = {}
        for n in names:
            a = sample[n]
            if hasattr(a, "detach"):  # a torch tensor
                a = a.detach().cpu().numpy()
            arrs[n] = np.asarray(a)
        out.append(arrs)
    if not out:
        raise GraphoptError("calibration data holds no samples")
    return out


def _sqnr(w: np.ndarray, dq: np.ndarray) -> float:
    noise = float(np.linalg.norm((w - dq).astype(np.float64)))
    return float("inf") if noise == 0 else 20 * np.log10(float(np.linalg.norm(w.astype(np.float64))) / noise)


def _compare(ref: Sequence[np.ndarray], got: Sequence[np.ndarray], names) -> list[OutputReport]:
    out = []
    for i, name in enumerate(names):
        r = [np.asarray(s[i], np.float64) for s in ref]
        g = [np.asarray(s[i], np.float64) for s in got]
        if not np.issubdtype(np.asarray(ref[0][i]).dtype, np.floating):
            continue
        cos = min(float(np.dot(a.ravel(), b.ravel()) / (np.linalg.norm(a) * np.linalg.norm(b)))
                  if np.linalg.norm(a) * np.linalg.norm(b) > 0 else float(np.array_equal(a, b)) for a, b in zip(r, g))
        err = max(float(np.max(np.abs(a - b))) if a.size else 0.0 for a, b in zip(r, g))
        top1 = None
        if r[0].ndim >= 1 and r[0].shape[-1] > 1:
            agree = [np.mean(a.reshape(-1, a.shape[-1]).argmax(-1) == b.reshape(-1, b.shape[-1]).argmax(-1))
                     for a, b in zip(r, g)]
            top1 = float(np.mean(agree))
        out.append(OutputReport(name, cos, err, top1))
    return out


def _activation_reports(original: Graph, table: CalibrationTable, samples: list[dict]) -> list[ActivationReport]:
    """Per calibrated activation: SQNR of its u8 quantize-dequantize (numpy, as QuantizeLinear:
    round half to even, saturate) over ``samples``."""
    values = list(table.ranges)
    signal = {v: 0.0 for v in values}
    noise = {v: 0.0 for v in values}
    qps = {v: table.qparams(v) for v in values}
    for seen in observe(original, values, samples):
        for v, x in seen.items():
            qp = qps[v]
            x64 = x.astype(np.float64)
            dq = (np.clip(np.rint(x / np.float32(qp.scale)) + qp.zero, 0, 255) - qp.zero) * np.float64(qp.scale)
            signal[v] += float(np.sum(x64 * x64))
            noise[v] += float(np.sum((x64 - dq) ** 2))
    return [ActivationReport(v, table.ranges[v][0], table.ranges[v][1], qps[v].scale, qps[v].zero,
                             float("inf") if noise[v] == 0 else 10 * float(np.log10(signal[v] / noise[v])))
            for v in values]


def quantize(model, calibration_data=None, *, weights: str = "int8", block: Optional[int] = None,
             exclude: Sequence[str] = (), min_elements: int = 4096, report_samples: int = 8,
             seed: int = 0, dynamic: bool = False, zero_point: bool = False, static: bool = False,
             method: str = "minmax", percentile: float = 99.99,
             table: Union[CalibrationTable, str, Path, None] = None) -> tuple[Graph, QuantReport]:
    """Quantize ``model`` (an .onnx path, bytes, an onnx.ModelProto or a Graph; a Graph is
    copied, not changed) and return ``(quantized graph, report)``.

    ``weights="int8"`` or ``"int4"``: symmetric int8/int4 weights (uint8/uint4 with a zero
    point per scale with ``zero_point``) of every MatMul/Gemm with a constant weight of at
    least ``min_elements`` elements (``exclude``: node names kept in float32), one scale per
    output column (``block=0``) or per ``block`` rows of K (default: 0 for int8, 32 for int4).
    Activations stay float32 (weight-only), unless
    ``dynamic``: those matmuls' activations are quantized at run time (`quantize-dynamic`); or
    ``static``: with a fixed u8 scale each, calibrated by ``method`` ("minmax",
    "percentile" at ``percentile``, "entropy"; see `graphopt.calibration`) on every sample of
    ``calibration_data``, or taken from ``table`` (a `CalibrationTable` or its JSON file);
    the report keeps the table (``report.table.save(path)`` to reuse it).
    ``calibration_data``: an iterable of input dicts (numpy or torch; a torch DataLoader
    yielding dicts) or a dict of arrays stacked on a leading axis, as an .npz holds them;
    the report compares the first ``report_samples`` of them (one random sample without)."""
    from .ir.clone import clone_graph
    from .ops.weight_quant import matmul_weight
    from .pipeline.api import run_pipeline
    from .testing.oracle import run_reference

    if weights not in WEIGHT_MODES:
        raise GraphoptError(f"weights={weights!r} is not supported (supported: {', '.join(WEIGHT_MODES)})")
    if static and dynamic:
        raise GraphoptError("activations are quantized either statically (calibrated) or dynamically, not both")
    if static and method not in METHODS:
        raise GraphoptError(f"calibration method {method!r} is not one of {', '.join(METHODS)}")
    if static and table is None and calibration_data is None:
        raise GraphoptError("static activation quantization needs calibration data (or a calibration table)")
    if isinstance(model, Graph):
        original = clone_graph(model)
    else:
        from .frontend.onnx_import import import_onnx

        original = import_onnx(model)
    samples = _samples(original, calibration_data, None if static and table is None else report_samples, seed)
    if static:
        table = (table if isinstance(table, CalibrationTable) else CalibrationTable.load(table)) if table is not None \
            else calibrate(original, samples, method, percentile=percentile)
    q = clone_graph(original)
    names = f"({','.join(exclude)})" if exclude else ""
    bits = 4 if weights == "int4" else 8
    if block is None:
        block = 32 if bits == 4 else 0
    spec = (f"quantize-weights{{bits={bits},block={block},zero-point={int(zero_point)},min-elements={min_elements}"
            + (f",exclude={names}" if names else "") + "}")
    if dynamic:
        spec += ",quantize-dynamic" + (f"{{exclude={names}}}" if names else "")
    with tempfile.TemporaryDirectory(prefix="graphopt-calibration-") as tmp:
        if static:
            path = Path(tmp) / "table.json"
            table.save(path)
            spec += f",quantize-static{{table={path}" + (f",exclude={names}" if names else "") + "}"
        run_pipeline(q, spec + ",dce")
    report = QuantReport(weights + (" with zero points" if zero_point else "")
                         + (f" block {block}" if block else " per column")
                         + (", dynamic int8 activations" if dynamic else "")
                         + (f", static int8 activations ({table.method}, {table.samples} samples)" if static else ""))
    floats = {n.name: n for n in original.walk()}
    for n in q.walk():
        w = matmul_weight(n) if n.op_type in ("MatMul", "Gemm") else None
        src = floats.get(n.name)
        if w is None or src is None:
            continue
        b = src.inputs[1]
        t = b.producer if b is not None and not b.is_constant else None
        fw = (t.inputs[0] if t is not None else b).const.numpy()
        stored_nk = (n.op_type == "Gemm" and bool(n.attr("transB", 0))) != (t is not None)
        w_nk = fw if stored_nk else fw.T
        report.weights.append(WeightReport(n.name, (t.inputs[0] if t is not None else b).name, tuple(fw.shape),
                                           w.block, _sqnr(w_nk, w.dequantized())))
    samples = samples[:report_samples]
    report.samples = len(samples)
    if static:
        report.table = table
        quantized = {n.inputs[0].name for n in q.nodes if n.op_type == "QuantizeLinear"
                     and n.provenance is not None and n.provenance.rule == "quantize-static.activation"}
        used = CalibrationTable(table.method, table.samples, {v: r for v, r in table.ranges.items() if v in quantized})
        report.activations = _activation_reports(original, used, samples)
    ref = [run_reference(original, s) for s in samples]
    got = [run_reference(q, s) for s in samples]
    report.outputs = _compare(ref, got, [o.name for o in original.outputs])
    return q, report
