"""`torch.compile(model, backend="graphopt")`: registered through the torch_dynamo_backends
entry point (pyproject.toml). Dynamo hands over one FX graph per captured region (several
when the model has graph breaks); each is compiled by graphopt.

Options pass through ``torch.compile(..., options={...})``: ``target`` ("cpu" or "cuda"),
``opt_level``, ``tune_trials``, ``tune_time``, ``fallback``; and ``on_error``: "raise"
(default) or "eager", which runs a region graphopt cannot compile with torch instead.
"""

from __future__ import annotations

import warnings
from typing import Optional

from ..errors import GraphoptError


def graphopt_backend(gm, example_inputs, options: Optional[dict] = None, **kwargs):
    import torch

    opts = dict(options or {})
    opts.update(kwargs)
    on_error = opts.pop("on_error", "raise")
    if on_error not in ("raise", "eager"):
        raise GraphoptError(f"torch.compile option on_error={on_error!r}: expected 'raise' or 'eager'")
    if any(not isinstance(x, torch.Tensor) for x in example_inputs):
        # Dynamo passes SymInts once it decides a dim is dynamic; graphopt compiles static
        # regions, so such a region runs on torch.
        warnings.warn("graphopt: a region with symbolic sizes runs eagerly (compile with dynamic=False to "
                      "specialize it)")
        return gm.forward
    from .torch_module import optimize_module

    try:
        compiled = optimize_module(gm, tuple(example_inputs), **opts)
    except GraphoptError as e:
        if on_error == "eager":
            warnings.warn(f"graphopt: running a region eagerly: {e}")
            return gm.forward
        raise

    def run(*args):
        return compiled(*args)

    run.graphopt_compiled = compiled  # type: ignore[attr-defined]
    return run
