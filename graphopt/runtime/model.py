"""CompiledModel: a compiled model's stages behind a call that takes numpy arrays (or torch
tensors, lists, scalars), checks them against the model's inputs, and returns numpy arrays."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

import numpy as np

from ..codegen import artifact
from .inputs import InputError, bind_inputs, check_input, input_specs
from .load import load_stages
from .stages import TvmStage
from ..util.spill import as_bytes

if TYPE_CHECKING:
    from ..compiler import CompileReport


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
                               [o["name"] for o in manifest["outputs"]], self._target,
                               input_dtypes=[i["dtype"] for i in manifest["inputs"]],
                               output_dtypes=[o["dtype"] for o in manifest["outputs"]],
                               written=[bool(i.get("written")) for i in manifest["inputs"]])]
        self._stages = stages
        self._specs = input_specs(manifest["inputs"])
        self._input_names = [s.name for s in self._specs]
        self._output_names = [o["name"] for o in manifest["outputs"]]
        # a one-stage model runs without the environment of named values
        self._single = stages[0] if len(stages) == 1 and isinstance(stages[0], TvmStage) else None

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

    def payload(self, name: str) -> Optional[bytes]:
        """The bytes of an artifact file this model carries besides its libraries and
        parameters (``artifact.ORACLE``: the compiled graph as ONNX), or None."""
        if name not in artifact.payload_files(self.manifest) and name != self.manifest.get("oracle_model"):
            return None
        return as_bytes((self._files or {}).get(name))

    # ---------------------------------------------------------------- running
    @property
    def supports_dlpack(self) -> bool:
        """Whether `run_dlpack` can run this model (one TVM stage on the CPU)."""
        return len(self._stages) == 1 and isinstance(self._stages[0], TvmStage) and self._target == "cpu"

    def run_dlpack(self, tensors: Sequence[Any], dtype_names: Sequence[str]) -> list:
        """Run on contiguous CPU tensors that speak DLPack (torch tensors), positionally and
        without copying them (unless misaligned); returns TVM tensors the caller owns (no
        later call writes into them, none shares memory with an input, a parameter or
        another output), which it wraps without a copy (``torch.from_dlpack``).
        ``dtype_names`` are the inputs' numpy dtype names."""
        specs = self.manifest["inputs"]
        if len(tensors) != len(specs):
            raise InputError(f"the model takes {len(specs)} input(s) ({', '.join(self.input_names)}), "
                             f"{len(tensors)} given")
        symbols: dict[str, tuple[int, str]] = {}
        for spec, t, dt in zip(specs, tensors, dtype_names):
            check_input(spec, dt, tuple(t.shape), symbols)
        return self._stages[0].call_dlpack(tensors, dtype_names)

    def run(self, *args, **kwargs) -> list[np.ndarray]:
        """The outputs as a list (always), arrays the caller owns: no later call writes
        into them, and none shares memory with an input or with another output."""
        arrays = bind_inputs(self._specs, args, kwargs)
        if self._single is not None:
            return self._single.call(arrays)
        env = dict(zip(self._input_names, arrays))
        for st in self._stages:
            st.run(env)
        return owned_outputs([env[o] for o in self._output_names], arrays)

    def __call__(self, *args, **kwargs):
        single = self._single
        if single is not None:  # (run's path for a one-stage model, one call less)
            outs = single.call(bind_inputs(self._specs, args, kwargs))
        else:
            outs = self.run(*args, **kwargs)
        return outs[0] if len(outs) == 1 else outs

    # ---------------------------------------------------------------- artifacts
    def save(self, path, *, oracle: bool = True) -> Path:
        """Write the artifact folder ``path``. ``oracle=False`` leaves out the compiled
        graph's ONNX (the model's size again), which only `compare_intermediates` reads."""
        manifest, files = self.manifest, self._files
        if not oracle and files and manifest.get("oracle_model") in files:
            files = {k: v for k, v in files.items() if k != manifest["oracle_model"]}
            manifest = {k: v for k, v in manifest.items() if k != "oracle_model"}
            manifest["oracle_missing"] = "saved without it (save(oracle=False))"
        if "stages" in manifest:
            return artifact.save(path, None, None, manifest, files=files)
        # The parameters live once, as TVM tensors; save reads them back. A loaded library
        # cannot be exported again: its bytes, kept at load, are written instead.
        lib = files.get(artifact.LIBRARY, self._executable) if files else self._executable
        return artifact.save(path, lib, self._stages[0].host_params(), manifest, files=files)

    @staticmethod
    def load(path) -> "CompiledModel":
        """The model in the artifact folder ``path`` (checked: see `graphopt.load`)."""
        manifest, stages, files = load_stages(path)
        executable = stages[0].executable if "stages" not in manifest else None
        return CompiledModel(manifest, executable, [], stages=stages, files=files)


def owned_outputs(outs: list, inputs: list) -> list[np.ndarray]:
    """``outs`` with a copy in place of any that is one of ``inputs`` (an input passed
    through a staged model) or that came earlier in ``outs`` (a value output twice)."""
    taken = {id(a) for a in inputs}
    res = []
    for o in outs:
        o = np.asarray(o)
        if id(o) in taken:
            o = o.copy()
        taken.add(id(o))
        res.append(o)
    return res
