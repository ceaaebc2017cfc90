"""The systems the benchmark compares. Each is prepared inside its own worker process
(`graphopt.bench.workers`) from a `Case`: `prepare(name, case, options)` returns a `Runner`
whose ``call()`` runs one inference on the case's inputs and whose ``arrays(out)`` turns its
result into numpy arrays in the model's output order (for the error against the oracle).

    graphopt         graphopt.optimize, default schedules (no tuning, an empty tuning cache)
    graphopt-tuned   graphopt.optimize with tune_time = the stated budget (minutes)
    onnxruntime      all graph optimizations, N intra-op threads, spinning off
    onnxruntime-opt  the same, on the model onnxruntime's transformers optimizer rewrote
                     (onnxruntime.transformers.optimizer; transformer cases only)
    openvino         OpenVINO CPU plugin, latency hint, N threads, f32 (optional: skipped if absent)
    tvm-from_onnx    TVM's own ONNX frontend and default pipeline (schedules nothing)
    torch-eager      the torch module (torch models only)
    torch.compile    torch.compile(module), inductor (torch models only)
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np

from .cases import Case, call_builder, load_arrays

SYSTEMS = ["graphopt", "graphopt-tuned", "onnxruntime", "onnxruntime-opt", "openvino", "tvm-from_onnx", "torch-eager",
           "torch.compile"]
ONNX_SYSTEMS = ["graphopt", "graphopt-tuned", "onnxruntime", "onnxruntime-opt", "openvino", "tvm-from_onnx"]
TORCH_SYSTEMS = ["torch-eager", "torch.compile"]
ALIASES = {"ort": "onnxruntime", "ort-opt": "onnxruntime-opt", "tvm": "tvm-from_onnx", "tuned": "graphopt-tuned", "eager": "torch-eager",
           "torch": "torch-eager", "compile": "torch.compile", "inductor": "torch.compile", "ov": "openvino",
           "graphopt-untuned": "graphopt"}
# Peak measurements run through the same worker machinery.
PEAK_SYSTEMS = ["numpy-matmul", "torch-matmul"]
PEAK_N = 1024


def canonical(name: str) -> str:
    name = name.strip()
    name = ALIASES.get(name, name)
    if name not in SYSTEMS and name not in PEAK_SYSTEMS:
        raise ValueError(f"unknown system {name!r}; expected one of {', '.join(SYSTEMS)}")
    return name


def applies(system: str, case: Case) -> bool:
    if system == "onnxruntime-opt":
        return case.transformer is not None
    return system not in TORCH_SYSTEMS or case.torch_builder is not None


@dataclass
class Runner:
    call: Callable[[], Any]
    arrays: Callable[[Any], list] = lambda out: [np.asarray(o) for o in (out if isinstance(out, (list, tuple)) else [out])]
    tune_s: Optional[float] = None
    exclude_s: float = 0.0      # setup inside prepare that is not the system's compile (building the torch module)
    note: str = ""
    info: dict = field(default_factory=dict)


def threads() -> int:
    return int(os.environ.get("GRAPHOPT_BENCH_THREADS", "0")) or len(os.sched_getaffinity(0))


def imports(system: str) -> None:
    """Import the system's libraries (before its memory baseline and prepare timer)."""
    if system.startswith("graphopt"):
        import graphopt.api  # noqa: F401  (tvm and graphopt.codegen)
    elif system.startswith("onnxruntime"):
        import onnxruntime  # noqa: F401
    elif system == "openvino":
        import openvino  # noqa: F401
    elif system == "tvm-from_onnx":
        import tvm  # noqa: F401
        from tvm.relax.frontend.onnx import from_onnx  # noqa: F401
    elif system.startswith("torch"):
        import torch

        torch.set_num_threads(threads())
        if system == "torch.compile":
            import torch._inductor  # noqa: F401
    elif system == "torch-matmul":
        import torch

        torch.set_num_threads(threads())


def prepare(system: str, case: Case, options: dict) -> Runner:
    return _PREPARE[system](case, options)


# ------------------------------------------------------------------------------ graphopt
def _graphopt(case: Case, options: dict, tuned: bool) -> Runner:
    from graphopt.api import optimize

    minutes = float(options.get("tune_minutes") or 0)
    if tuned and minutes <= 0:
        raise ValueError("graphopt-tuned needs a tuning budget (--tune-minutes)")
    cache = options.get("tune_cache")
    if not cache:  # a fresh, empty tuning cache: untuned means untuned, tuned means this budget
        import atexit
        import shutil

        cache = tempfile.mkdtemp(prefix="graphopt-bench-cache-")
        atexit.register(shutil.rmtree, cache, True)
    cm = optimize(case.onnx, target="cpu", opt_level=options.get("opt_level", "O2"),
                  tune_time=minutes if tuned else None, cache_dir=cache)
    arrays = load_arrays(case.inputs)
    rep = getattr(cm, "report", None)
    note = f"tuned {minutes:g} min" if tuned else ""
    info = {"report": rep.summary()} if rep is not None else {}
    return Runner(lambda: cm.run(*arrays), lambda out: list(out), tune_s=getattr(rep, "tune_s", None) if tuned else None,
                  note=note, info=info)


# ------------------------------------------------------------------------------ onnxruntime
def ort_session(model, n_threads: int, optimize: bool = True):
    """An onnxruntime session as the benchmarks run it: all graph optimizations, ``n_threads``
    intra-op threads, one inter-op thread, spinning off (spinning worker threads would
    steal the cores from the system timed next)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize
                                   else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    so.intra_op_num_threads = n_threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.add_session_config_entry("session.inter_op.allow_spinning", "0")
    if not isinstance(model, (str, bytes)):
        model = model.SerializeToString()
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def _onnxruntime(case: Case, options: dict) -> Runner:
    sess = ort_session(case.onnx, threads())
    names = [i.name for i in sess.get_inputs()]
    feeds = dict(zip(names, load_arrays(case.inputs)))
    return Runner(lambda: sess.run(None, feeds), lambda out: list(out))


def _onnxruntime_opt(case: Case, options: dict) -> Runner:
    """onnxruntime on the model its transformers optimizer rewrote (Attention, LayerNorm,
    Gelu, ... fused ops of its com.microsoft domain), the way onnxruntime's own transformer
    benchmarks run. The note lists the fused operators it reports."""
    import onnxruntime  # noqa: F401  (the optimizer's logger needs it loaded)
    from onnxruntime.transformers.optimizer import optimize_model

    hint = case.transformer or {}
    kind = hint.get("model_type", "bert")
    failed = ""
    try:
        opt = optimize_model(case.onnx, model_type=kind, num_heads=hint.get("num_heads", 0),
                             hidden_size=hint.get("hidden_size", 0), use_gpu=False)
    except Exception as e:  # its pattern code crashes on some graphs (gpt2 on torch.onnx's dynamo export)
        if kind == "bert":
            raise
        failed = f"{kind} optimizer failed ({type(e).__name__}: {e}), so "
        kind = "bert"
        opt = optimize_model(case.onnx, model_type=kind, num_heads=hint.get("num_heads", 0),
                             hidden_size=hint.get("hidden_size", 0), use_gpu=False)
    fused = {k: v for k, v in sorted(opt.get_fused_operator_statistics().items()) if v}
    with tempfile.TemporaryDirectory(prefix="graphopt-bench-ortopt-") as tmp:
        path = os.path.join(tmp, "optimized.onnx")
        big = opt.model.ByteSize() > 1_500_000_000
        opt.save_model_to_file(path, use_external_data_format=big)
        sess = ort_session(path, threads())
    names = [i.name for i in sess.get_inputs()]
    feeds = dict(zip(names, load_arrays(case.inputs)))
    note = failed + f"{kind} optimizer: " + (", ".join(f"{k} {v}" for k, v in fused.items()) or "nothing fused")
    return Runner(lambda: sess.run(None, feeds), lambda out: list(out), note=note)


# ------------------------------------------------------------------------------ OpenVINO
def _openvino(case: Case, options: dict) -> Runner:
    import openvino as ov

    core = ov.Core()
    model = core.read_model(case.onnx)
    compiled = core.compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": threads(), "PERFORMANCE_HINT": "LATENCY",
                                                 "INFERENCE_PRECISION_HINT": "f32"})
    req = compiled.create_infer_request()
    arrays = load_arrays(case.inputs)
    outs = compiled.outputs

    def call():
        return req.infer(arrays)

    return Runner(call, lambda res: [np.asarray(res[o]) for o in outs], note=f"openvino {ov.__version__.split('-')[0]}")


# ------------------------------------------------------------------------------ TVM from_onnx
def build_tvm_from_onnx(model, target="cpu"):
    """TVM's own ONNX frontend and default ``relax.build`` pipeline for graphopt's host
    target: returns ``(run, compile_s)``, ``run(*numpy_arrays)`` returning TVM's result.
    (benchmarks/lowering.py's ``bench_tvm_from_onnx`` does the same build inline.)"""
    import tvm
    from tvm import relax
    from tvm.relax.frontend.onnx import from_onnx

    from graphopt.codegen.target import Target

    if isinstance(model, (str, os.PathLike)):
        import onnx

        model = onnx.load(str(model))
    t0 = time.perf_counter()
    mod = from_onnx(model, keep_params_in_input=False)
    ex = relax.build(mod, target=Target.parse(target).tvm)
    compile_s = time.perf_counter() - t0
    vm = relax.VirtualMachine(ex, tvm.cpu())
    fn = vm["main"]

    def run(*arrays):
        return fn(*[tvm.runtime.tensor(a) for a in arrays])

    return run, compile_s


def tvm_arrays(out) -> list:
    if hasattr(out, "numpy"):
        return [out.numpy()]
    res = []
    for o in out:
        res.extend(tvm_arrays(o))
    return res


def _tvm(case: Case, options: dict) -> Runner:
    run, _ = build_tvm_from_onnx(case.onnx)
    arrays = load_arrays(case.inputs)
    return Runner(lambda: run(*arrays), tvm_arrays, note="untuned TVM, time-capped")


# ------------------------------------------------------------------------------ torch
def _torch_inputs(case: Case):
    import torch
    from torch.utils import _pytree as pytree

    t0 = time.perf_counter()
    model, example = call_builder(case.torch_builder)
    build_s = time.perf_counter() - t0
    leaves, spec = pytree.tree_flatten(example)
    arrays = iter(load_arrays(case.inputs))
    leaves = [torch.from_numpy(next(arrays)) if isinstance(x, torch.Tensor) else x for x in leaves]
    return model, pytree.tree_unflatten(leaves, spec), build_s


def _torch_arrays(out) -> list:
    import torch
    from torch.utils import _pytree as pytree

    return [x.detach().numpy() for x in pytree.tree_flatten(out)[0] if isinstance(x, torch.Tensor)]


def _torch_eager(case: Case, options: dict) -> Runner:
    import torch

    model, args, build_s = _torch_inputs(case)

    def call():
        with torch.no_grad():
            return model(*args)

    return Runner(call, _torch_arrays, exclude_s=build_s)


def _torch_compile(case: Case, options: dict) -> Runner:
    import torch

    model, args, build_s = _torch_inputs(case)
    cm = torch.compile(model)

    def call():
        with torch.no_grad():
            return cm(*args)

    call()  # the compile happens on the first call: count it in prepare
    return Runner(call, _torch_arrays, exclude_s=build_s, note="inductor")


# ------------------------------------------------------------------------------ machine peak
def _numpy_matmul(case: Case, options: dict) -> Runner:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((PEAK_N, PEAK_N), dtype=np.float32)
    b = rng.standard_normal((PEAK_N, PEAK_N), dtype=np.float32)
    return Runner(lambda: a @ b, lambda out: [])


def _torch_matmul(case: Case, options: dict) -> Runner:
    import torch

    a = torch.randn(PEAK_N, PEAK_N)
    b = torch.randn(PEAK_N, PEAK_N)
    return Runner(lambda: torch.mm(a, b), lambda out: [])


_PREPARE = {
    "graphopt": lambda c, o: _graphopt(c, o, tuned=False),
    "graphopt-tuned": lambda c, o: _graphopt(c, o, tuned=True),
    "onnxruntime": _onnxruntime,
    "onnxruntime-opt": _onnxruntime_opt,
    "openvino": _openvino,
    "tvm-from_onnx": _tvm,
    "torch-eager": _torch_eager,
    "torch.compile": _torch_compile,
    "numpy-matmul": _numpy_matmul,
    "torch-matmul": _torch_matmul,
}
