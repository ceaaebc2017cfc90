"""Model -> CompiledModel, the compile's driver: import (`frontend`), the one pipeline before
lowering (`pipeline.lowering_pipeline`), then the back end (`codegen.backend`: lower,
tune, build), once, or once per TVM stage with ``fallback="ort"`` (`codegen.fallback`
cuts the stages; onnxruntime regions are exported here). The CompiledModel that runs the
result is graphopt.runtime's. It sits above codegen, which imports neither the frontend
nor the pipeline."""

from __future__ import annotations

import functools
import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional, Sequence, TextIO, Union

from .errors import GraphoptError
from .ir import DType, Graph
from .runtime import CompiledModel
from .runtime.stages import OrtStage, TvmStage
from .util.memory import release_free_memory


@dataclass
class CompileReport:
    target: str
    lower_s: float = 0.0
    build_s: float = 0.0
    tune_s: float = 0.0
    passes_s: float = 0.0
    kernels: int = 0
    scheduled: dict = field(default_factory=dict)
    from_database: int = 0
    folded: int = 0
    tuning: Optional[dict] = None
    fallback_nodes: list = field(default_factory=list)
    kernel_names: list = field(default_factory=list)   # the built kernels (PrimFuncs), every stage's
    fusion: Optional[dict] = None                      # the fusion report, when compile_model was asked for it

    def summary(self) -> str:
        parts = [f"target {self.target}", f"{self.kernels} kernels",
                 f"lower {self.lower_s:.1f}s", f"build {self.build_s:.1f}s"]
        if self.tuning:
            t = self.tuning
            if t.get("reused"):
                parts.append(f"tuning database reused ({self.tune_s:.1f}s, no trials)")
            else:
                parts.append(f"tune {self.tune_s:.1f}s ({t.get('trials', 0)} trials, {t.get('failed', 0)} failed"
                             + (", interrupted" if t.get("interrupted") else "") + ")")
            used = sum(1 for k in t.get("tasks", []) if k.get("used"))
            parts.append(f"{used}/{len(t.get('tasks', []))} tasks use tuned kernels")
        if self.from_database:
            parts.append(f"{self.from_database} kernels from the tuning database")
        if self.fallback_nodes:
            parts.append(f"{len(self.fallback_nodes)} nodes on onnxruntime: {', '.join(self.fallback_nodes)}")
        return ", ".join(parts)

    def tuning_table(self, top: int = 20) -> str:
        """Per task: default ms, tuned ms, trials, whether the tuned kernel is used."""
        if not self.tuning:
            return ""
        from .codegen.tuning import format_tasks

        return format_tasks(self.tuning, top)


def _io_spec(values, written: frozenset = frozenset()) -> list[dict]:
    """The manifest's inputs or outputs; an input the compiled code writes into (``written``:
    an in-place CacheWrite's cache) says ``"written": true``."""
    return [{"name": v.name, "dtype": v.type.dtype.numpy.name if v.type.dtype is not DType.BFLOAT16 else "bfloat16",
             "shape": list(v.type.shape) if v.type.shape is not None else None,
             **({"written": True} if v.name in written else {})} for v in values]



def to_graph(model) -> tuple[Graph, str]:
    """A graph from a path, bytes, an onnx.ModelProto or a Graph; and a content digest."""
    from .frontend.onnx_import import import_onnx, load_model

    if isinstance(model, Graph):
        from .frontend.onnx_export import export_onnx

        return model, hashlib.sha256(export_onnx(model).SerializeToString()).hexdigest()[:16]
    proto, _ = load_model(model)
    digest = hashlib.sha256(proto.SerializeToString()).hexdigest()[:16]
    return import_onnx(proto if not isinstance(model, (str, Path)) else model), digest


def prepare_graph(graph: Graph, level: Optional[str], owned: bool = True,
                  dims: Optional[Mapping[str, int]] = None) -> tuple[Graph, int]:
    """The one pipeline a compile runs before lowering (`lowering_pipeline`: the ``dims``
    binding, ``level``'s passes, then everything computable from constants folded), in
    place when the graph is ``owned`` (imported here; a caller's Graph is copied first).
    Returns the graph and how many nodes that last folding took away (the report's
    ``folded``)."""
    run, folded = _prepare_run(graph, level, owned, dims=dims)
    return run.graph, folded


def _prepare_run(graph: Graph, level: Optional[str], owned: bool = True, explain=False,
                 dims: Optional[Mapping[str, int]] = None, where: str = ""):
    """`prepare_graph`'s pipeline run (its context holds what the fusion report reads;
    ``explain``: run_pipeline's, a sink to record the explain log without printing it)."""
    from .pipeline import clone_graph, lowering_pipeline, run_pipeline

    # A bug in a pass raises InternalError (naming the pass) rather than being papered
    # over by compiling the unoptimized graph: bugs stay bugs.
    run = run_pipeline(graph if owned else clone_graph(graph), lowering_pipeline(level, dims), explain=explain,
                       where=where)
    last = run.records[-1]
    return run, last.nodes_before - last.nodes_after


def _gives_back_memory(fn):
    """After ``fn`` (a compile) returns or fails, the heap it freed goes back to the system
    (`util.memory`): otherwise the process stays at the compile's peak."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        finally:
            release_free_memory()
    return wrapper


@_gives_back_memory
def compile_model(model, target: str = "cpu", *, tune_trials: int = 0, tune_time: Optional[float] = None,
                  fallback: Optional[str] = None, opt_level: Optional[str] = "O2", cache_dir=None,
                  progress: bool = False, fusion_report: Union[bool, str] = False,
                  explain: Union[bool, str, TextIO] = False, shapes: Optional[Mapping[str, Sequence[int]]] = None,
                  dims: Optional[Mapping[str, int]] = None, example_inputs=None) -> CompiledModel:
    """``fusion_report``: True (or a rule-name filter, as ``--explain PATTERN``) to keep
    the fusion report of the compile in ``report.fusion``, with its kernels; ``explain``:
    the explain report of the compile's pipeline, as `run_pipeline` prints it.
    ``shapes``, ``dims``, ``example_inputs``: a static shape binding (`shape_binding`),
    applied by specialize-shapes before the ``opt_level`` pipeline."""
    from .codegen.backend import build_graph
    from .codegen.target import as_target

    if fallback not in (None, "none", "ort"):
        raise GraphoptError(f"unknown fallback {fallback!r}; expected 'ort' or none")
    tgt = as_target(target)
    tgt.tvm  # noqa: B018  (a target that cannot be built here fails now, before any work)
    if (tune_trials or tune_time) and not tgt.runnable:
        raise GraphoptError(f"target {tgt.name!r}: tuning measures candidates on the GPU, and none is visible")
    from .ir.binding import shape_binding

    graph, digest = to_graph(model)
    where = str(model) if isinstance(model, (str, Path)) else f"graph {graph.name!r}"
    binding = shape_binding(graph, shapes, dims, example_inputs, where) if (shapes or dims or example_inputs is not None) \
        else {}
    report = CompileReport(target=tgt.key)
    t0 = time.perf_counter()
    import io

    run, report.folded = _prepare_run(graph, opt_level, owned=not isinstance(model, Graph),
                                      explain=explain or (io.StringIO() if fusion_report else False), dims=binding,
                                      where=str(model) if isinstance(model, (str, Path)) else "")
    graph = run.graph
    report.passes_s = time.perf_counter() - t0
    from .ops.defs.cache import copy_instead, written_inputs

    manifest = {
        "inputs": _io_spec(graph.inputs, written_inputs(graph)),
        "outputs": _io_spec(graph.outputs),
        "target": tgt.name,
        "target_key": report.target,
        "source_digest": digest,
        "graph": graph.name,
    }
    bad, lowered = [], None
    if fallback == "ort":
        from .codegen.fallback import plan

        t0 = time.perf_counter()
        found = plan(graph, tgt)
        report.lower_s += time.perf_counter() - t0
        bad, lowered = found.fallback, found.lowered
    if not bad:
        ex, params, nonce, specs, calls = build_graph(graph, tgt, report, tune_trials, tune_time, cache_dir,
                                                       progress, manifest["inputs"], manifest["outputs"],
                                                       lowered=lowered)
        manifest["libraries"], manifest["param_specs"] = {"model.so": nonce}, {"params.npz": specs}
        manifest["kernels"] = calls
        manifest["report"] = _manifest_report(report)
        _fusion(report, manifest, graph, run, fusion_report, tgt)
        files = _oracle_file(graph, manifest)
        return CompiledModel(manifest, ex, params, report=report, files=files or None)

    # --fallback ort: TVM stages and onnxruntime regions, run in order
    from .codegen.fallback import ORT, partition, unit_graphs
    from .frontend.onnx_export import export_onnx

    report.fallback_nodes = [nm for _, nm in bad]
    copy_instead(graph)  # (an in-place write needs the caller to hand its buffer over)
    manifest["inputs"] = _io_spec(graph.inputs)
    units = partition(graph, set(report.fallback_nodes))
    unit_graphs(graph, units)
    stages, files, specs = [], {}, []
    manifest["libraries"], manifest["param_specs"] = {}, {}
    for i, u in enumerate(units):
        if u.kind == ORT:
            data = export_onnx(u.graph).SerializeToString()
            fname = f"region{i}.onnx"
            files[fname] = data
            stages.append(OrtStage(data, u.inputs, u.outputs))
            specs.append({"kind": "ort", "model": fname, "inputs": u.inputs, "outputs": u.outputs, "nodes": u.nodes})
            continue
        in_names = [v.name for v in u.graph.inputs]
        ex, params, nonce, pspecs, calls = build_graph(u.graph, tgt, report, tune_trials, tune_time, cache_dir,
                                                        progress, in_names, list(u.outputs))
        lib, pf = f"stage{i}.so", f"stage{i}.npz"
        files[lib], files[pf] = ex, list(params)
        manifest["libraries"][lib], manifest["param_specs"][pf] = nonce, pspecs
        stages.append(TvmStage(ex, params, in_names, u.outputs, tgt,
                               input_dtypes=[s["dtype"] for s in _io_spec(u.graph.inputs)],
                               output_dtypes=[s["dtype"] for s in _io_spec(u.graph.outputs)]))
        specs.append({"kind": "tvm", "lib": lib, "params": pf, "inputs": in_names, "outputs": u.outputs,
                      "nodes": u.nodes, "kernels": calls})
    manifest["stages"] = specs
    manifest["fallback_nodes"] = [{"op": op, "node": nm} for op, nm in bad]
    manifest["report"] = _manifest_report(report)
    _fusion(report, manifest, graph, run, fusion_report, tgt)
    files.update(_oracle_file(graph, manifest))
    return CompiledModel(manifest, None, [], report=report, stages=stages, files=files)


def _oracle_file(graph: Graph, manifest: dict) -> dict:
    """{artifact.ORACLE: the compiled graph as ONNX, written one initializer at a time to a
    temporary file (it is as large as the weights)} for `graphopt.compare_intermediates`
    (its oracle runs the graph the library was compiled from), noted in the manifest; {}
    with the reason noted instead when it cannot be kept (ONNX's 2 GB protobuf limit)."""
    from .codegen import artifact
    from .frontend.onnx_export import write_onnx_stream
    from .util.spill import SpilledBytes

    try:
        data = SpilledBytes.written(lambda f: write_onnx_stream(graph, f))
    except Exception as e:  # export of a graph that compiled is not the compile's business to fail
        manifest["oracle_missing"] = f"the compiled graph did not export to ONNX: {type(e).__name__}: {e}"[:300]
        return {}
    if len(data) > artifact.ORACLE_LIMIT:
        manifest["oracle_missing"] = f"the compiled graph's ONNX is {len(data) >> 20} MiB, over the limit kept"
        return {}
    manifest["oracle_model"] = artifact.ORACLE
    return {artifact.ORACLE: data}


def _fusion(report: CompileReport, manifest: dict, graph: Graph, run, wanted, tgt) -> None:
    """The fusion report with the built kernels (``wanted``: compile_model's fusion_report)."""
    if not wanted:
        return
    from .codegen.lower.helpers import safe_name
    from .codegen.lower.registry import lowering_for
    from .ir import is_fused_group
    from .ops import has_decomposition
    from .pipeline.report import add_kernels, fusion_report

    def own_kernel(n) -> Optional[str]:
        # codegen.lower.driver.lower_fused_group's function name: a fused group, or a named
        # fused op lowered from its decomposition, is one Primitive function, one kernel
        if is_fused_group(n) or (has_decomposition(n) and lowering_for(n, tgt.kind) is None):
            return "fused_" + safe_name(n.name)
        return None

    # the build's map of kernel calls to graph values, where it records one (every TVM stage's)
    calls = manifest.get("kernels") or [c for st in manifest.get("stages", ()) for c in st.get("kernels") or ()]
    report.fusion = fusion_report(graph, run.ctx, only=wanted if isinstance(wanted, str) else None)
    add_kernels(report.fusion, graph, run.ctx, report.kernel_names, report.tuning, own_kernel, calls)


def _manifest_report(report: "CompileReport") -> dict:
    return {"kernels": report.kernels, "scheduled": report.scheduled, "folded": report.folded,
            "from_database": report.from_database, "fallback_nodes": report.fallback_nodes}
