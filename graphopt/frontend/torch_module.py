"""graphopt.optimize for a torch.nn.Module: trace, compile, and wrap the result so that it
behaves like the module for inference: torch tensors in, the module's output structure out
(tuples, dicts, transformers' ModelOutput), on the inputs' device."""

from __future__ import annotations

from typing import Any, Optional

from ..errors import GraphoptError
from .torch_trace import TracedModule, trace_module


class TorchInputError(GraphoptError, ValueError):
    """A call the compiled module cannot take: names the input at fault."""


class CompiledModule:
    """The compiled form of a torch module; call it like the module."""

    def __init__(self, traced: TracedModule, compiled, module_name: str):
        self.traced = traced
        self.compiled = compiled
        self.module_name = module_name

    @property
    def graph(self):
        return self.traced.graph

    @property
    def input_names(self) -> list[str]:
        return list(self.traced.input_names)

    def __repr__(self) -> str:
        return f"<graphopt.CompiledModule of {self.module_name} on {self.compiled.target}>"

    def __call__(self, *args, **kwargs) -> Any:
        import numpy as np
        import torch
        from torch.utils import _pytree as pytree

        flat, spec = pytree.tree_flatten((args, kwargs))
        if spec != self.traced.in_spec:
            raise TorchInputError(f"{self.module_name} was compiled for arguments shaped like {self.traced.in_spec}, "
                                  f"but was called with {spec}")
        names = self.traced.input_names
        tensors = [x for x in flat if isinstance(x, torch.Tensor)]
        if len(tensors) != len(names):
            raise TorchInputError(f"{self.module_name} takes {len(names)} tensor inputs ({', '.join(names)}), "
                                  f"got {len(tensors)}")
        device = tensors[0].device if tensors else torch.device("cpu")
        tensors = [t.detach() for t in tensors]
        if self.compiled.supports_dlpack and all(t.device.type == "cpu" and t.is_contiguous() for t in tensors):
            result = self._run_zero_copy(tensors)
        else:
            outs = self.compiled.run(*[t.cpu().numpy() for t in tensors])
            result = [torch.from_numpy(np.ascontiguousarray(o)) for o in outs]
        if device.type != "cpu":
            result = [r.to(device) for r in result]
        return pytree.tree_unflatten(result, self.traced.out_spec)

    def _run_zero_copy(self, tensors):
        """Inputs go to TVM and outputs come back through DLPack, sharing memory. The
        runtime hands over only outputs the caller owns (a copy of one that is an input, a
        parameter or a constant), so callers never alias them."""
        import torch

        dtypes = [str(t.dtype).removeprefix("torch.") for t in tensors]  # numpy's names: float32, int64, bool
        return [torch.from_dlpack(o) for o in self.compiled.run_dlpack(tensors, dtypes)]


def optimize_module(model, example_inputs, target: str = "cpu", *, dynamic_shapes=None,
                    kwargs: Optional[dict] = None, **compile_options) -> CompiledModule:
    """Trace ``model`` on ``example_inputs`` and compile it for ``target``."""
    from ..compiler import compile_model

    traced = trace_module(model, example_inputs, dynamic_shapes, kwargs=kwargs)
    compiled = compile_model(traced.graph, target=target, **compile_options)
    return CompiledModule(traced, compiled, type(model).__name__)
