"""The stages a compiled model runs, in order, over one environment of named values: a TVM
executable with its parameters, or an onnxruntime region (``fallback="ort"``)."""

from __future__ import annotations

import threading
from typing import Optional

import numpy as np

from ..codegen.target import as_target
from ..errors import GraphoptError
from .inputs import native_contiguous
from .tensors import ALIGN, Staging, from_tvm, itemsize, numpy_takes, outputs_of, owned_tensors, to_tvm


class TvmStage:
    """One TVM executable with its parameters on the target's device. Compiled for a GPU
    this machine lacks (``cuda:sm_XX``), it keeps the parameters on the host, can be saved,
    and refuses to run."""

    def __init__(self, executable, params, inputs, outputs, target, input_dtypes: Optional[list] = None,
                 output_dtypes: Optional[list] = None, written: Optional[list] = None):
        self.inputs, self.outputs = list(inputs), list(outputs)
        # per input, whether the compiled code writes into it (an in-place cache): `call`
        # and `call_dlpack` then pass a copy, so no caller's array changes
        self._written = [bool(w) for w in (written or [False] * len(self.inputs))]
        # per input and output, whether numpy's DLPack takes its dtype (None: look per call)
        self._plain = [numpy_takes(d) for d in (input_dtypes or [None] * len(self.inputs))]
        self._viewable = [numpy_takes(d) for d in (output_dtypes or [None] * len(self.outputs))]
        self._in = [(Staging(), plain) for plain in self._plain]  # what each input's conversion needs
        self._out_sizes = [itemsize(d) for d in output_dtypes] if output_dtypes else None
        self._param_ranges: list = []
        # One call at a time: the VM is not reentrant (and FFI calls release the GIL), and
        # the staging buffers are shared between calls.
        self._lock = threading.Lock()
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
        host = [np.array(p, order="C", copy=False) if np.ndim(p) else np.array(p) for p in self._host]
        self.params = [tvm.runtime.tensor(p, self.dev) for p in host]
        if self.target.is_cpu:  # where an output could be a view of a parameter
            self._param_ranges = [(t.data_ptr(), t.data_ptr() + p.nbytes) for t, p in zip(self.params, host)]
        self._host = None  # the parameters live once

    def host_params(self) -> list:
        return [p.numpy() for p in self.params] if self.params is not None else [np.asarray(p) for p in self._host]

    def check_runnable(self) -> None:
        if self.params is None:
            raise GraphoptError(f"compiled for {self.target}, and no CUDA GPU is visible here: save the model "
                                "and run it on a machine with that GPU")

    def call(self, arrays: list) -> list[np.ndarray]:
        """The outputs, as numpy arrays the caller owns, for the inputs ``arrays`` (checked
        numpy arrays, in order)."""
        if self.params is None:
            self.check_runnable()
        if not self.target.is_cpu:
            return self._call_device(arrays)
        tensors, ranges = [], self._param_ranges.copy()
        lock = self._lock
        lock.acquire()
        try:
            for a, (staging, plain), written in zip(arrays, self._in, self._written):
                t = to_tvm(a, staging, plain, copy=written)
                tensors.append(t)
                p = t.data_ptr()
                ranges.append((p, p + a.nbytes))
            return from_tvm(self.fn(*tensors, *self.params), self._viewable, ranges)
        finally:
            lock.release()

    def _call_device(self, arrays: list) -> list[np.ndarray]:
        import tvm

        args = [tvm.runtime.tensor(native_contiguous(a), self.dev) for a in arrays]
        return [r.numpy() for r in outputs_of(self.fn(*args, *self.params))]

    def call_dlpack(self, tensors, dtype_names) -> list:
        """The outputs, as TVM tensors the caller owns, for contiguous CPU tensors that
        speak DLPack (read in place when 64-byte aligned, else copied)."""
        from tvm_ffi import from_dlpack

        self.check_runnable()
        sizes = [itemsize(d) for d in dtype_names]
        out_sizes = self._out_sizes
        with self._lock:
            args, ranges = [], self._param_ranges.copy()
            for t, size, written in zip(tensors, sizes, self._written):
                a = from_dlpack(t, require_contiguous=True)
                if written or a.data_ptr() % ALIGN:
                    a = a.copyto(a.device)
                p = a.data_ptr()
                ranges.append((p, p + a.numel() * size))
                args.append(a)
            res = self.fn(*args, *self.params)
            if out_sizes is None:  # (an output's dtype costs a microsecond to read: only here)
                out_sizes = [itemsize(str(o.dtype)) for o in outputs_of(res)]
            return owned_tensors(res, out_sizes, ranges)

    def to_device(self, a: np.ndarray):
        """``a`` copied into a TVM tensor on this stage's device (for `call_tensors`)."""
        import tvm

        self.check_runnable()
        return tvm.runtime.tensor(native_contiguous(a), self.dev)

    def call_tensors(self, tensors: list) -> list:
        """The outputs as TVM tensors, for inputs that are TVM tensors on this stage's device
        already, with no checks or copies and no ownership promise (an output may share an
        input's or a parameter's memory): for callers that keep state on the device between
        calls (graphopt.llm's key/value cache)."""
        self.check_runnable()
        with self._lock:
            return outputs_of(self.fn(*tensors, *self.params))

    def share_parameters(self, pool: dict) -> int:
        """Take ``pool``'s tensor in place of each parameter of equal dtype, shape and
        bytes, and add the others to it, so that programs compiled from one model's weights
        (an LLM's prefill and decode) hold them once. Returns the bytes no longer held."""
        import hashlib

        self.check_runnable()
        freed = 0
        for i, t in enumerate(self.params):
            host = _host_view(t, self.target.is_cpu)
            raw = np.ascontiguousarray(host).reshape(-1).view(np.uint8)
            key = (str(t.dtype), tuple(t.shape), hashlib.blake2b(raw, digest_size=16).hexdigest())
            if key in pool:
                if pool[key] is not t:
                    self.params[i] = pool[key]
                    freed += host.nbytes
            else:
                pool[key] = t
        if self.target.is_cpu:
            self._param_ranges = [(t.data_ptr(), t.data_ptr() + _host_view(t, True).nbytes) for t in self.params]
        return freed

    def run(self, env: dict) -> None:
        env.update(zip(self.outputs, self.call([env[k] for k in self.inputs])))


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
        res = self.session.run(self.outputs, {k: native_contiguous(env[k]) for k in self.inputs})
        env.update(zip(self.outputs, res))


def _host_view(t, on_cpu: bool) -> np.ndarray:
    """A TVM tensor as numpy: a view on the CPU, a copy from a GPU (or of a bfloat16
    tensor, which numpy's DLPack does not take)."""
    if on_cpu and str(t.dtype) != "bfloat16":
        return np.from_dlpack(t)
    return t.numpy()
