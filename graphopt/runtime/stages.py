"""The stages a compiled model runs, in order, over one environment of named values: a TVM
executable with its parameters, or an onnxruntime region (``fallback="ort"``)."""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..codegen.target import as_target
from ..errors import GraphoptError


class TvmStage:
    """One TVM executable with its parameters on the target's device. Compiled for a GPU
    this machine lacks (``cuda:sm_XX``), it keeps the parameters on the host, can be saved,
    and refuses to run."""

    def __init__(self, executable, params, inputs, outputs, target):
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


class OrtStage:
    """One onnxruntime region at run time."""

    def __init__(self, model_bytes: bytes, inputs, outputs):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.log_severity_level = 3
        so.intra_op_num_threads = 0
        self.model_bytes = model_bytes
        self.inputs, self.outputs = list(inputs), list(outputs)
        self.session = ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])

    def run(self, env: dict) -> None:
        res = self.session.run(self.outputs, {k: env[k] for k in self.inputs})
        env.update(zip(self.outputs, res))
