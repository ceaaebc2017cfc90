"""Run a TVM stage once with each kernel call's outputs captured, leaving the stage as it
is: a fresh relax VirtualMachine over the same executable and parameter tensors, with an
instrument (``VirtualMachine.set_instrument``, called after each packed call with its
arguments) that copies the outputs of the calls the build's kernel map lists
(`codegen.kernel_map`). A call_tir kernel writes its outputs into its last arguments; a
reshape the build turned into a view is met as ``vm.builtin.reshape`` and returns it."""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from .inputs import native_contiguous
from .stages import TvmStage
from .tensors import outputs_of

VIEW_SYMBOL = "vm.builtin.reshape"


@dataclass
class Trace:
    """Per entry of the kernel map, the outputs its call produced (None: it did not run,
    or ran more often than the map knows, as in a loop), in the map's order; ``order``:
    the entries in the order they ran."""

    arrays: list
    order: list = field(default_factory=list)
    outputs: list = field(default_factory=list)   # the stage's outputs (numpy)
    errors: list = field(default_factory=list)    # capture failures: (kernel, message)


def _numpy(t) -> Optional[np.ndarray]:
    return np.array(t.numpy(), copy=True)


def trace_stage(stage: TvmStage, calls: list, arrays: list) -> Trace:
    """Run ``stage`` on ``arrays`` (numpy, in its input order) with ``calls`` (its kernel
    map) captured."""
    import tvm
    from tvm import relax

    stage.check_runnable()
    pending: dict = defaultdict(deque)
    views: deque = deque()
    skip = {c["kernel"] for c in calls if c.get("ambiguous")}   # called in control flow too
    skip_views = any(c.get("ambiguous") and c.get("view") for c in calls)
    for i, c in enumerate(calls):
        if c["kernel"] in skip or (c.get("view") and skip_views):
            continue
        (views if c.get("view") else pending[c["kernel"]]).append(i)
    trace = Trace([None] * len(calls))

    def instrument(func, symbol, before_run, ret_value, *args):
        if before_run:
            return 0
        try:
            sym = str(symbol)
            if sym == VIEW_SYMBOL and views:
                i = views.popleft()
                trace.arrays[i] = [_numpy(ret_value)]
            elif pending.get(sym):
                i = pending[sym].popleft()
                n = len(calls[i]["outputs"])
                trace.arrays[i] = [_numpy(a) for a in args[len(args) - n:]]
            else:
                return 0
            trace.order.append(i)
        except Exception as e:  # a capture that fails must not break the run it watches
            trace.errors.append((str(symbol), f"{type(e).__name__}: {e}"))
        return 0

    vm = relax.VirtualMachine(stage.executable, stage.dev)
    vm.set_instrument(instrument)
    args = [tvm.runtime.tensor(native_contiguous(a), stage.dev) for a in arrays]
    res = vm["main"](*args, *stage.params)
    trace.outputs = [np.array(r.numpy(), copy=True) for r in outputs_of(res)]
    return trace
