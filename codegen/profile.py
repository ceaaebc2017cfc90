"""Per-kernel timing of a lowered model: each fused PrimFunc is built alone and timed on
random data, and weighted by how many times ``main`` calls it. Used by the benchmark (to
say which kernels hold speed back) and by tuning (to prioritize tasks by run-time share)."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass


@dataclass
class KernelTime:
    name: str
    calls: int
    ms: float          # one call
    flops: float = 0.0
    kind: str = ""     # the graphopt kernel (kernels.tags) the function holds, "" for TVM's own

    @property
    def total_ms(self) -> float:
        return self.ms * self.calls


def call_counts(mod) -> Counter:
    """How many times the relax functions of ``mod`` call each PrimFunc (static count)."""
    from tvm import relax

    counts: Counter = Counter()

    def visit(e):
        if isinstance(e, relax.Call) and getattr(e.op, "name", "") == "relax.call_tir":
            gv = e.args[0]
            counts[gv.name_hint] += 1

    for gv, f in mod.functions.items():
        if isinstance(f, relax.Function):
            relax.analysis.post_order_visit(f, visit)
    return counts


def random_args(func, dev):
    """Random arguments (floats in [-1, 1], zeros otherwise) for a PrimFunc's buffers on
    ``dev``; None when a buffer has a symbolic shape."""
    import numpy as np
    import tvm
    from tvm import tirx

    rng = np.random.default_rng(0)
    bmap = getattr(func, "buffer_map", None) or {}
    args = []
    for p in func.params:
        buf = p if isinstance(p, tirx.Buffer) else bmap.get(p)
        if buf is None:
            return None
        shape = []
        for d in buf.shape:
            if not hasattr(d, "value"):
                return None  # symbolic
            shape.append(int(d.value))
        dt = str(buf.dtype)
        if dt.startswith("float"):
            a = rng.uniform(-1, 1, shape).astype(dt)
        elif dt == "bool":
            a = np.zeros(shape, bool)
        else:
            a = np.zeros(shape, dt)
        args.append(tvm.runtime.tensor(a, dev))
    return args


def kernel_kind(func) -> str:
    """The tag of the graphopt kernel (`kernels.tags`) ``func`` computes, "" if none: a
    FusedGroup's kernel is named after its anchor node, not after the kernel inside it."""
    from .schedules.helpers import schedule_of, tagged_blocks

    return next((t for _, t in tagged_blocks(schedule_of(func))), "")


def profile_kernels(mod, target, number: int = 3, names=None) -> list[KernelTime]:
    """Time every scheduled PrimFunc of ``mod`` (a module after `build.schedule`)."""
    import tvm
    from tvm import tirx

    dev = tvm.cpu(0) if "cpu" in target.keys else tvm.cuda(0)
    counts = call_counts(mod)
    out = []
    for gv, f in mod.functions.items():
        if not isinstance(f, tirx.PrimFunc) or (names and gv.name_hint not in names):
            continue
        try:
            args = random_args(f, dev)
            if args is None:
                continue
            lib = tvm.compile(tvm.IRModule({"main": f.with_attr("global_symbol", "main")}), target=target)
            fn = lib["main"]
            fn(*args)
            t0 = time.perf_counter()
            for _ in range(number):
                fn(*args)
            ms = (time.perf_counter() - t0) / number * 1000
        except Exception:
            continue
        out.append(KernelTime(gv.name_hint, counts.get(gv.name_hint, 1), ms, kind=kernel_kind(f)))
    out.sort(key=lambda k: -k.total_ms)
    return out
