"""Model -> CompiledModel: import, graphopt's passes (when the pipeline exists), lowering,
optional tuning, build; and the CompiledModel that runs it with checked inputs."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from ..errors import GraphoptError
from ..ir import DType, Graph


class InputError(GraphoptError, ValueError):
    """Inputs that do not match the compiled model (wrong count, name, rank, shape, dtype)."""


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
        from .tuning import format_tasks

        return format_tasks(self.tuning, top)


def _io_spec(values) -> list[dict]:
    return [{"name": v.name, "dtype": v.type.dtype.numpy.name if v.type.dtype is not DType.BFLOAT16 else "bfloat16",
             "shape": list(v.type.shape) if v.type.shape is not None else None} for v in values]


def to_graph(model) -> tuple[Graph, str]:
    """A graph from a path, bytes, an onnx.ModelProto or a Graph; and a content digest."""
    from ..frontend.onnx_import import import_onnx, load_model

    if isinstance(model, Graph):
        from ..frontend.onnx_export import export_onnx

        return model, hashlib.sha256(export_onnx(model).SerializeToString()).hexdigest()[:16]
    proto, _ = load_model(model)
    digest = hashlib.sha256(proto.SerializeToString()).hexdigest()[:16]
    return import_onnx(proto if not isinstance(model, (str, Path)) else model), digest


def run_pipeline(graph: Graph, level: Optional[str], owned: bool = True) -> Graph:
    """graphopt's own passes (in place when the graph is ``owned``, i.e. imported here; a
    caller's Graph is copied first)."""
    if not level:
        return graph
    from ..pipeline import clone_graph, run_passes
    # A bug in a pass raises InternalError (naming the pass) rather than being papered
    # over by compiling the unoptimized graph: bugs stay bugs.
    out = run_passes(graph if owned else clone_graph(graph), level)
    return out if isinstance(out, Graph) else graph


def compile_model(model, target: str = "cpu", *, tune_trials: int = 0, tune_time: Optional[float] = None,
                  fallback: Optional[str] = None, opt_level: Optional[str] = "O2", cache_dir=None,
                  progress: bool = False) -> "CompiledModel":
    from .target import as_target

    if fallback not in (None, "none", "ort"):
        raise GraphoptError(f"unknown fallback {fallback!r}; expected 'ort' or none")
    tgt = as_target(target)
    tgt.tvm  # noqa: B018  (a target that cannot be built here fails now, before any work)
    if (tune_trials or tune_time) and not tgt.runnable:
        raise GraphoptError(f"target {tgt.name!r}: tuning measures candidates on the GPU, and none is visible")
    graph, digest = to_graph(model)
    report = CompileReport(target=tgt.key)
    t0 = time.perf_counter()
    graph = run_pipeline(graph, opt_level, owned=not isinstance(model, Graph))
    report.passes_s = time.perf_counter() - t0
    manifest = {
        "inputs": _io_spec(graph.inputs),
        "outputs": _io_spec(graph.outputs),
        "target": tgt.name,
        "target_key": report.target,
        "source_digest": digest,
        "graph": graph.name,
    }
    bad = []
    if fallback == "ort":
        from .fallback import fallback_nodes

        bad = fallback_nodes(graph)
    if not bad:
        ex, params, nonce, specs = _compile_tvm(graph, tgt, report, tune_trials, tune_time, cache_dir,
                                                progress, manifest["inputs"], manifest["outputs"])
        manifest["libraries"], manifest["param_specs"] = {"model.so": nonce}, {"params.npz": specs}
        manifest["report"] = _manifest_report(report)
        return CompiledModel(manifest, ex, params, report=report)

    # --fallback ort: TVM stages and onnxruntime regions, run in order
    from .fallback import ORT, partition, unit_models
    from ..frontend.onnx_import import import_onnx

    report.fallback_nodes = [nm for _, nm in bad]
    units = partition(graph, set(report.fallback_nodes))
    unit_models(graph, units)
    stages, files, specs = [], {}, []
    manifest["libraries"], manifest["param_specs"] = {}, {}
    for i, u in enumerate(units):
        if u.kind == ORT:
            data = u.model.SerializeToString()
            fname = f"region{i}.onnx"
            files[fname] = data
            stages.append(_OrtStage(data, u.inputs, u.outputs))
            specs.append({"kind": "ort", "model": fname, "inputs": u.inputs, "outputs": u.outputs, "nodes": u.nodes})
            continue
        sub = import_onnx(u.model)
        in_names = [v.name for v in sub.inputs]
        ex, params, nonce, pspecs = _compile_tvm(sub, tgt, report, tune_trials, tune_time, cache_dir,
                                                 progress, in_names, list(u.outputs))
        lib, pf = f"stage{i}.so", f"stage{i}.npz"
        files[lib], files[pf] = ex, list(params)
        manifest["libraries"][lib], manifest["param_specs"][pf] = nonce, pspecs
        stages.append(_TvmStage(ex, params, in_names, u.outputs, tgt))
        specs.append({"kind": "tvm", "lib": lib, "params": pf, "inputs": in_names, "outputs": u.outputs,
                      "nodes": u.nodes})
    manifest["stages"] = specs
    manifest["fallback_nodes"] = [{"op": op, "node": nm} for op, nm in bad]
    manifest["report"] = _manifest_report(report)
    return CompiledModel(manifest, None, [], report=report, stages=stages, files=files)


def _manifest_report(report: "CompileReport") -> dict:
    return {"kernels": report.kernels, "scheduled": report.scheduled, "folded": report.folded,
            "from_database": report.from_database, "fallback_nodes": report.fallback_nodes}


def _stamp_library_id(inputs, outputs, params) -> tuple:
    """A function that returns the library's id (see `artifact.library_id`), by name, for
    `build` to add; (those functions, nonce, parameter specs for the manifest)."""
    import secrets

    from tvm import relax

    from .artifact import LIBRARY_ID_FN, library_id, param_specs

    nonce, specs = secrets.token_hex(8), param_specs(params)
    fn = relax.Function([], relax.ShapeExpr(library_id(nonce, inputs, outputs, specs)))
    return {LIBRARY_ID_FN: fn.with_attr("global_symbol", LIBRARY_ID_FN)}, nonce, specs


def _compile_tvm(graph, tgt, report, tune_trials, tune_time, cache_dir, progress, sig_inputs, sig_outputs):
    """Lower, (tune,) build one graph; accumulates into ``report``. (executable, params,
    library nonce, parameter specs); ``sig_*`` are what the manifest records of its inputs
    and outputs, which the library's id covers."""
    from .build import BuildStats, build
    from .lowering import lower

    t0 = time.perf_counter()
    lowered = lower(graph, target=tgt)
    report.lower_s += time.perf_counter() - t0
    report.folded += lowered.folded
    database = None
    if tune_trials or tune_time:
        from .tuning import tune

        t0 = time.perf_counter()
        database, info = tune(lowered.mod, tgt, trials=tune_trials, minutes=tune_time, cache_dir=cache_dir,
                              progress=progress)
        report.tune_s += time.perf_counter() - t0
        if report.tuning:  # several TVM stages (fallback): merge
            for k in ("trials", "failed", "seconds"):
                report.tuning[k] = report.tuning.get(k, 0) + info.get(k, 0)
            report.tuning["tasks"] = report.tuning.get("tasks", []) + info.get("tasks", [])
            report.tuning["reused"] = report.tuning.get("reused", True) and info.get("reused", False)
        else:
            report.tuning = info
    else:
        from .tuning import existing_database

        database = existing_database(tgt, cache_dir)
    extra, nonce, specs = _stamp_library_id(sig_inputs, sig_outputs, lowered.params)
    stats = BuildStats()
    ex = build(lowered.mod, tgt, database=database, stats=stats, extra=extra)
    report.build_s += stats.seconds
    report.kernels += stats.kernels
    for k, v in stats.scheduled.items():
        report.scheduled[k] = report.scheduled.get(k, 0) + v
    report.from_database += stats.from_database
    return ex, lowered.params, nonce, specs


class _TvmStage:
    """One TVM executable with its parameters on the target's device. Compiled for a GPU
    this machine lacks (``cuda:sm_XX``), it keeps the parameters on the host, can be saved,
    and refuses to run."""

    def __init__(self, executable, params, inputs, outputs, target):
        from .target import as_target

        self.inputs, self.outputs = list(inputs), list(outputs)
        self.target, self.executable = as_target(target), executable
        self.params: Optional[list] = None     # TVM tensors on the device, once attached
        self._host = list(params)
        if self.target.runnable:
            self._attach()

    def _attach(self) -> None:
        import tvm
        from tvm import relax

        self.dev = self.target.device()
        self.vm = relax.VirtualMachine(self.executable, self.dev)
        self.fn = self.vm["main"]
        self.params = [tvm.runtime.tensor(np.array(p, order="C", copy=False) if np.ndim(p) else np.array(p), self.dev)
                       for p in self._host]
        self._host = None  # the parameters live once

    def host_params(self) -> list:
        return [p.numpy() for p in self.params] if self.params is not None else [np.asarray(p) for p in self._host]

    def check_runnable(self) -> None:
        if self.params is None:
            raise GraphoptError(f"compiled for {self.target}, and no CUDA GPU is visible here: save the model "
                                "and run it on a machine with that GPU")

    def run(self, env: dict) -> None:
        import tvm

        self.check_runnable()
        args = []
        for k in self.inputs:
            a = np.asarray(env[k])  # (np.ascontiguousarray would make a 0-d array 1-d)
            args.append(tvm.runtime.tensor(a if a.flags.c_contiguous else np.array(a, order="C"), self.dev))
        res = self.fn(*args, *self.params)
        res = [res] if hasattr(res, "numpy") else list(res)
        env.update((k, r.numpy()) for k, r in zip(self.outputs, res))


def _OrtStage(data, inputs, outputs):
    from .fallback import OrtStage

    return OrtStage(data, inputs, outputs)


class CompiledModel:
    """A compiled model: call it with numpy arrays (positionally in the model's input
    order, or by input name as keywords); it returns the outputs in order (a list, or the
    array itself when there is one output)."""

    def __init__(self, manifest: dict, executable, params: Sequence[np.ndarray], report: Optional[CompileReport] = None,
                 stages: Optional[list] = None, files: Optional[dict] = None):
        self.manifest = manifest
        self.report = report
        self._executable = executable
        self._target = manifest["target"]
        self._files = files
        if stages is None:  # one TVM stage: the whole model
            stages = [_TvmStage(executable, params, [i["name"] for i in manifest["inputs"]],
                                [o["name"] for o in manifest["outputs"]], self._target)]
        self._stages = stages

    @property
    def fallback_nodes(self) -> list[str]:
        """Names of the nodes that run on onnxruntime (``fallback="ort"``)."""
        return [f["node"] for f in self.manifest.get("fallback_nodes", [])]

    # ---------------------------------------------------------------- info
    @property
    def input_names(self) -> list[str]:
        return [i["name"] for i in self.manifest["inputs"]]

    @property
    def output_names(self) -> list[str]:
        return [o["name"] for o in self.manifest["outputs"]]

    @property
    def target(self) -> str:
        return self._target

    def __repr__(self) -> str:
        ins = ", ".join(f"{i['name']}: {i['dtype']}{i['shape']}" for i in self.manifest["inputs"])
        return f"<CompiledModel ({ins}) on {self._target}>"

    # ---------------------------------------------------------------- running
    def _bind(self, args, kwargs) -> list[np.ndarray]:
        specs = self.manifest["inputs"]
        names = [s["name"] for s in specs]
        if len(args) > len(specs):
            raise InputError(f"the model takes {len(specs)} input(s) ({', '.join(names)}), {len(args)} given")
        given: dict[str, Any] = {}
        for s, a in zip(specs, args):
            given[s["name"]] = a
        for k, v in kwargs.items():
            if k not in names:
                raise InputError(f"unknown input {k!r}; the model's inputs are: {', '.join(names)}")
            if k in given:
                raise InputError(f"input {k!r} given twice (positionally and by name)")
            given[k] = v
        missing = [n for n in names if n not in given]
        if missing:
            raise InputError(f"missing input(s): {', '.join(repr(m) for m in missing)}")
        symbols: dict[str, tuple[int, str]] = {}
        out = []
        for s in specs:
            name = s["name"]
            a = given[name]
            if hasattr(a, "detach") and hasattr(a, "numpy"):  # a torch tensor
                a = a.detach().cpu().numpy()
            if not isinstance(a, np.ndarray):
                a = _as_array(name, a)
            _check_input(s, a.dtype.name, tuple(a.shape), symbols)
            if not a.dtype.isnative:  # a big-endian .npy: TVM reads native byte order only
                a = a.astype(a.dtype.newbyteorder("="), order="C")
            out.append(a if a.flags.c_contiguous else np.array(a, order="C"))
        return out

    @property
    def supports_dlpack(self) -> bool:
        """Whether `run_dlpack` can run this model (one TVM stage on the CPU)."""
        return len(self._stages) == 1 and isinstance(self._stages[0], _TvmStage) and self._target == "cpu"

    def run_dlpack(self, tensors: Sequence[Any], dtype_names: Sequence[str]) -> list:
        """Run on contiguous CPU tensors that speak DLPack (torch tensors), positionally and
        without copying them; returns TVM tensors, which the caller wraps without a copy
        (``torch.from_dlpack``). ``dtype_names`` are the inputs' numpy dtype names."""
        import tvm

        specs = self.manifest["inputs"]
        if len(tensors) != len(specs):
            raise InputError(f"the model takes {len(specs)} input(s) ({', '.join(self.input_names)}), "
                             f"{len(tensors)} given")
        symbols: dict[str, tuple[int, str]] = {}
        for spec, t, dt in zip(specs, tensors, dtype_names):
            _check_input(spec, dt, tuple(t.shape), symbols)
        st = self._stages[0]
        st.check_runnable()
        res = st.fn(*(tvm.runtime.from_dlpack(t) for t in tensors), *st.params)
        return [res] if hasattr(res, "numpy") else list(res)

    def run(self, *args, **kwargs) -> list[np.ndarray]:
        """The outputs as a list (always)."""
        arrays = self._bind(args, kwargs)
        env = dict(zip(self.input_names, arrays))
        for st in self._stages:
            st.run(env)
        return [np.asarray(env[o]) for o in self.output_names]

    def __call__(self, *args, **kwargs):
        outs = self.run(*args, **kwargs)
        return outs[0] if len(outs) == 1 else outs

    # ---------------------------------------------------------------- artifacts
    def save(self, path) -> Path:
        from . import artifact

        if "stages" in self.manifest:
            return artifact.save(path, None, None, self.manifest, files=self._files)
        # The parameters live once, as TVM tensors; save reads them back. A loaded library
        # cannot be exported again: its bytes, kept at load, are written instead.
        lib = self._files[artifact.LIBRARY] if self._files else self._executable
        return artifact.save(path, lib, self._stages[0].host_params(), self.manifest)

    @staticmethod
    def load(path) -> "CompiledModel":
        from tvm import relax

        from . import artifact

        from .target import as_target

        target = artifact.read_manifest(path)["target"]
        if not as_target(target).runnable:
            raise artifact.ArtifactError(f"{path}: compiled for {target}, but no CUDA GPU is visible")
        manifest, lib, params = artifact.load(path)
        if "stages" in manifest:
            stages = []
            for sp in manifest["stages"]:
                if sp["kind"] == "ort":
                    stages.append(_load_ort_stage(path, sp))
                else:
                    stages.append(_load_tvm_stage(path, manifest, sp["lib"], sp["params"], sp["inputs"],
                                                  sp["outputs"]))
            # The files as they are on disk, so that the loaded model saves again.
            files = {name: (Path(path) / name).read_bytes() for name in artifact.payload_files(manifest)}
            return CompiledModel(manifest, None, [], stages=stages, files=files)
        st = _load_tvm_stage(path, manifest, artifact.LIBRARY, artifact.PARAMS, manifest["inputs"],
                             manifest["outputs"], lib=lib, params=params)
        return CompiledModel(manifest, st.executable, [], stages=[st],
                             files={artifact.LIBRARY: (Path(path) / artifact.LIBRARY).read_bytes()})


def _load_tvm_stage(path, manifest: dict, lib_name: str, params_name: str, sig_inputs, sig_outputs, lib=None,
                    params=None) -> _TvmStage:
    """A TVM stage from an artifact's files, refused unless its library carries the id
    that the manifest's nonce, inputs, outputs and parameter specs give."""
    from tvm import relax

    from . import artifact

    lib = lib if lib is not None else artifact.load_library(path, lib_name)
    params = params if params is not None else artifact.load_params(path, params_name, manifest)
    try:
        ex = relax.VMExecutable(lib)
    except Exception as e:
        raise artifact.ArtifactError(f"{Path(path) / lib_name}: not a compiled Relax library ({type(e).__name__})") \
            from None
    names = lambda io: [x["name"] if isinstance(x, dict) else x for x in io]  # noqa: E731
    try:
        st = _TvmStage(ex, params, names(sig_inputs), names(sig_outputs), manifest["target"])
    except Exception as e:  # the VM refuses the library (not one of graphopt's)
        raise artifact.ArtifactError(f"{Path(path) / lib_name}: cannot start the compiled library "
                                     f"({type(e).__name__})") from None
    if st.params is not None:
        expected = artifact.library_id(manifest["libraries"][lib_name], sig_inputs, sig_outputs,
                                       manifest["param_specs"][params_name])
        artifact.check_library_id(st.vm, path, lib_name, expected)
    return st


def _load_ort_stage(path, sp: dict):
    from . import artifact

    fpath = Path(path) / sp["model"]
    try:
        return _OrtStage(fpath.read_bytes(), sp["inputs"], sp["outputs"])
    except Exception as e:  # onnxruntime's own errors: a damaged or substituted region
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise artifact.ArtifactError(f"{fpath}: onnxruntime cannot load this region: {first}") from None


def _as_array(name: str, a) -> np.ndarray:
    """A Python scalar or (nested) list as an array; anything else is the caller's error."""
    if not (np.isscalar(a) or isinstance(a, (list, tuple))):
        raise InputError(f"input {name!r}: expected a numpy array, got {type(a).__name__}")
    try:
        return np.asarray(a)
    except (ValueError, TypeError) as e:  # ragged nesting
        raise InputError(f"input {name!r}: not an array: {e}") from None


def _check_input(spec: dict, dtype_name: str, shape: tuple, symbols: dict) -> None:
    """Raise InputError naming the input when its dtype or shape does not fit ``spec``;
    ``symbols`` carries the sizes symbolic dims took in earlier inputs."""
    name = spec["name"]
    if spec["dtype"] != "bfloat16" and dtype_name != spec["dtype"]:
        raise InputError(f"input {name!r}: expected dtype {spec['dtype']}, got {dtype_name}")
    want = spec["shape"]
    if want is None:
        return
    if len(shape) != len(want):
        raise InputError(f"input {name!r}: expected rank {len(want)} (shape {_fmt(want)}), "
                         f"got rank {len(shape)} (shape {list(shape)})")
    for i, (d, g) in enumerate(zip(want, shape)):
        if isinstance(d, int):
            if d != g:
                raise InputError(f"input {name!r}: expected shape {_fmt(want)}, got {list(shape)} "
                                 f"(dim {i} is {g}, expected {d})")
        else:
            prev = symbols.get(d)
            if prev is not None and prev[0] != g:
                raise InputError(f"input {name!r}: dim {i} ({d}) is {g}, but input {prev[1]!r} has {d} = {prev[0]}")
            symbols[d] = (g, name)


def _fmt(shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"
