"""CompiledModel: a compiled model's stages behind a call that takes numpy arrays (or torch
tensors, lists, scalars), checks them against the model's inputs, and returns numpy arrays."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

import numpy as np

from ..codegen import artifact
from .inputs import InputError, bind_inputs, check_input
from .load import load_stages
from .stages import TvmStage

if TYPE_CHECKING:
    from ..codegen.compiler import CompileReport


class CompiledModel:
    """A compiled model: call it with numpy arrays (positionally in the model's input
    order, or by input name as keywords); it returns the outputs in order (a list, or the
    array itself when there is one output)."""

    def __init__(self, manifest: dict, executable, params: Sequence[np.ndarray],
                 report: Optional["CompileReport"] = None, stages: Optional[list] = None,
                 files: Optional[dict] = None):
        self.manifest = manifest
        self.report = report
        self._executable = executable
        self._target = manifest["target"]
        self._files = files
        if stages is None:  # one TVM stage: the whole model
            stages = [TvmStage(executable, params, [i["name"] for i in manifest["inputs"]],
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

    @property
    def stages(self) -> list:
        """The stages, in run order (TvmStage, OrtStage)."""
        return list(self._stages)

    def __repr__(self) -> str:
        ins = ", ".join(f"{i['name']}: {i['dtype']}{i['shape']}" for i in self.manifest["inputs"])
        return f"<CompiledModel ({ins}) on {self._target}>"

    # ---------------------------------------------------------------- running
    @property
    def supports_dlpack(self) -> bool:
        """Whether `run_dlpack` can run this model (one TVM stage on the CPU)."""
        return len(self._stages) == 1 and isinstance(self._stages[0], TvmStage) and self._target == "cpu"

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
            check_input(spec, dt, tuple(t.shape), symbols)
        st = self._stages[0]
        st.check_runnable()
        res = st.fn(*(tvm.runtime.from_dlpack(t) for t in tensors), *st.params)
        return [res] if hasattr(res, "numpy") else list(res)

    def run(self, *args, **kwargs) -> list[np.ndarray]:
        """The outputs as a list (always)."""
        arrays = bind_inputs(self.manifest["inputs"], args, kwargs)
        env = dict(zip(self.input_names, arrays))
        for st in self._stages:
            st.run(env)
        return [np.asarray(env[o]) for o in self.output_names]

    def __call__(self, *args, **kwargs):
        outs = self.run(*args, **kwargs)
        return outs[0] if len(outs) == 1 else outs

    # ---------------------------------------------------------------- artifacts
    def save(self, path) -> Path:
        if "stages" in self.manifest:
            return artifact.save(path, None, None, self.manifest, files=self._files)
        # The parameters live once, as TVM tensors; save reads them back. A loaded library
        # cannot be exported again: its bytes, kept at load, are written instead.
        lib = self._files[artifact.LIBRARY] if self._files else self._executable
        return artifact.save(path, lib, self._stages[0].host_params(), self.manifest)

    @staticmethod
    def load(path) -> "CompiledModel":
        """The model in the artifact folder ``path`` (checked: see `graphopt.load`)."""
        manifest, stages, files = load_stages(path)
        executable = stages[0].executable if "stages" not in manifest else None
        return CompiledModel(manifest, executable, [], stages=stages, files=files)
