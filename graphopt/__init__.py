"""graphopt: a graph compiler for neural networks.

    g = graphopt.import_onnx("model.onnx")
    print(graphopt.print_ir(g))
    model = graphopt.export_onnx(g)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from .errors import ExportError, GraphoptError, ModelLoadError, UnsupportedOpError
from .ir import Graph
from .ir.parser import ParseError, parse_ir
from .ir.printer import print_ir
from .ir.verifier import VerificationError, verify

from .version import __version__  # noqa: F401

if TYPE_CHECKING:
    import onnx


def import_onnx(model, *, base_dir=None) -> Graph:
    """Import an ONNX model (a path, bytes or an ``onnx.ModelProto``) as a Graph.

    External data is read from the model file's folder, or from ``base_dir`` (which a model
    given as bytes or a ModelProto with external data needs); never from outside it."""
    from .frontend.onnx_import import import_onnx as _imp

    return _imp(model, base_dir=base_dir)


def export_onnx(graph: Graph) -> "onnx.ModelProto":
    """Export a Graph as an ONNX model that passes onnx.checker."""
    from .frontend.onnx_export import export_onnx as _exp

    return _exp(graph)


def run_passes(graph: Graph, pipeline="O1", **instruments) -> Graph:
    """Run a pipeline ("O0", "O1", a spec string like "simplify,dce", or a list of pass
    names) on ``graph`` and return it. Instruments: see graphopt.pipeline.api.run_passes."""
    from .pipeline.api import run_passes as _run

    return _run(graph, pipeline, **instruments)


def fusion_report(graph: Graph, pipeline="O2", *, only: Optional[str] = None, **instruments) -> dict:
    """Run ``pipeline`` on ``graph`` in place (as `run_passes` does, same instruments) with
    the explain log on, and return the fusion report: per pattern how many times it applied,
    the fused nodes with the source nodes they came from, and the near misses with their
    reasons (JSON-able; see graphopt.pipeline.report). ``only``: just the rules whose name
    contains it."""
    import io

    from .pipeline.api import run_pipeline
    from .pipeline.report import fusion_report as _report

    instruments.setdefault("explain", io.StringIO())  # recorded, not printed
    run = run_pipeline(graph, pipeline, **instruments)
    return _report(run.graph, run.ctx, only=only)


def trace(model, example_inputs, dynamic_shapes=None, *, kwargs=None) -> Graph:
    """The IR graph of a ``torch.nn.Module`` (torch.export, then torch.onnx, then import).
    Dims marked dynamic (``torch.export.Dim("seq")``) stay symbolic under the given names."""
    from .frontend.torch_trace import trace as _trace

    return _trace(model, example_inputs, dynamic_shapes, kwargs=kwargs)


def optimize(model, example_inputs=None, target: str = "cpu", **options):
    """Compile a model for ``target`` ("cpu", "cuda" or "cuda:sm_XX") and return a callable.

    - a ``torch.nn.Module`` (with ``example_inputs``; ``dynamic_shapes=`` as torch.export
      takes it): the result takes and returns torch tensors, in the module's output structure;
    - an ONNX model (a path, bytes or ``onnx.ModelProto``) or a Graph: the result takes numpy
      arrays (positionally or by input name) and returns numpy arrays;
    - a transformers causal LM (GPT2LMHeadModel, LlamaForCausalLM, ...) without
      ``example_inputs``, or with ``config.use_cache`` on: a `graphopt.llm.CompiledCausalLM`
      whose ``generate`` works as transformers' (options ``max_length``, ``prefill_buckets``,
      ``quantize="int8"|"int4"|"w8a8"``; see graphopt.llm.model).

    Options: ``opt_level`` ("O0", "O1"...), ``tune_trials``, ``tune_time`` (minutes),
    ``fallback`` ("ort"), ``cache_dir``; ``shapes={"input_ids": (1, 128)}`` and
    ``dims={"seq": 128}`` compile for those static shapes (for an ONNX model or a Graph,
    ``example_inputs`` binds each given input to its array's shape too).
    """
    if _is_torch_module(model):
        from .llm import is_causal_lm

        if is_causal_lm(model) and (example_inputs is None or getattr(model.config, "use_cache", False)):
            from .llm import optimize_causal_lm

            return optimize_causal_lm(model, target, **options)
        if example_inputs is None:
            raise TypeError("optimize(nn.Module) needs example_inputs to trace the module with")
        from .frontend.torch_module import optimize_module

        return optimize_module(model, example_inputs, target, **options)
    from .api import optimize as _optimize

    return _optimize(model, target=target, example_inputs=example_inputs, **options)


def load(path):
    """Load an artifact folder written by ``graphopt compile`` or ``CompiledModel.save``."""
    from .api import load as _load

    return _load(path)


def quantize(model, calibration_data=None, **options):
    """Weight-only int8 quantization of ``model`` with an accuracy report: returns
    ``(quantized graph, report)``; see graphopt.quantization.quantize for the options."""
    from .quantization import quantize as _quantize

    return _quantize(model, calibration_data, **options)


def compare_intermediates(model, inputs=None, *, rtol=None, atol=None, seed: int = 0):
    """Run a compiled model (a CompiledModel or an artifact folder) and the oracle on the
    same inputs (missing ones generated, seeded) and compare each kernel call's outputs;
    the report names the first kernel that diverges (graphopt.intermediates)."""
    from .intermediates import compare_intermediates as _cmp

    return _cmp(model, inputs, rtol=rtol, atol=atol, seed=seed)


def _is_torch_module(model) -> bool:
    import sys

    torch = sys.modules.get("torch")
    return torch is not None and isinstance(model, torch.nn.Module)


__all__ = [
    "ExportError", "Graph", "GraphoptError", "ModelLoadError", "ParseError", "UnsupportedOpError",
    "VerificationError", "compare_intermediates", "export_onnx", "fusion_report", "import_onnx", "load", "optimize", "parse_ir", "print_ir", "quantize", "run_passes", "trace", "verify",
]
