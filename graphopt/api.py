"""graphopt's user API: compile a model and run it.

    model = graphopt.optimize("model.onnx", target="cpu")
    y = model(x)                      # numpy in, numpy out
    model.save("out/")                # an artifact folder
    model = graphopt.load("out/")
"""

from __future__ import annotations

from typing import Optional

from .compiler import CompileReport
from .runtime import CompiledModel, InputError


def optimize(model, target: str = "cpu", *, example_inputs=None, shapes=None, dims=None, tune_trials: int = 0,
             tune_time: Optional[float] = None, fallback: Optional[str] = None, opt_level: Optional[str] = "O2",
             cache_dir=None, progress: bool = False) -> CompiledModel:
    """Compile ``model`` (an .onnx path, bytes, an onnx.ModelProto or a graphopt Graph) for
    ``target`` ("cpu", "cuda" for this machine's GPU, or "cuda:sm_XX" to compile for that GPU
    architecture without one: the result saves, and runs where such a GPU is) and return a
    callable `CompiledModel`.

    ``tune_trials`` / ``tune_time`` (minutes) run MetaSchedule under that budget, with a
    persistent database in ``cache_dir`` (default ``~/.cache/graphopt``); ``fallback="ort"``
    runs ops graphopt cannot lower on onnxruntime.

    Static shapes: ``shapes={"input_ids": (1, 128)}`` fixes inputs' shapes,
    ``dims={"seq": 128}`` sizes symbolic dims by name, and ``example_inputs`` (arrays by
    input name, or a sequence in input order) fixes each given input to its array's shape.
    The model is then compiled for those shapes only (specialize-shapes runs before the
    ``opt_level`` pipeline, and what the sizes make constant folds); the result accepts
    inputs of those shapes. A binding that contradicts the model (an unknown input or dim,
    a wrong rank, a dim the model fixes to another size, a size below 1, two sizes for one
    dim) raises `graphopt.errors.ShapeBindingError` naming the input and the dim.
    """
    from .compiler import compile_model

    return compile_model(model, target, tune_trials=tune_trials, tune_time=tune_time, fallback=fallback,
                         opt_level=opt_level, cache_dir=cache_dir, progress=progress, shapes=shapes, dims=dims,
                         example_inputs=example_inputs)


def load(path) -> CompiledModel:
    """Load an artifact folder written by `CompiledModel.save` or ``graphopt compile``.

    The folder is untrusted input: the manifest's types, that every file it names is a
    plain file inside the folder, the content hash, each parameter's dtype and shape, and
    each library's id are checked before anything runs; any mismatch is an ArtifactError
    naming the file or manifest entry."""
    return CompiledModel.load(path)


__all__ = ["CompiledModel", "CompileReport", "InputError", "load", "optimize"]
