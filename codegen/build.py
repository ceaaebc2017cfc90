"""Relax IRModule -> executable: TVM's legalization and fusion, then graphopt's default
schedules (CPU) or dlight's GPU rules (CUDA), tuned schedules from a database first."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Optional


@dataclass
class BuildStats:
    seconds: float = 0.0
    kernels: int = 0
    scheduled: dict = field(default_factory=dict)   # rule name -> count
    from_database: int = 0


def prepare(mod, target):
    """Legalize and fuse: the module of fused PrimFuncs that schedules (and tuning) see."""
    import tvm
    from tvm import relax

    seq = tvm.transform.Sequential([
        relax.transform.LegalizeOps(),
        relax.transform.AnnotateTIROpPattern(),
        relax.transform.FoldConstant(),
        relax.transform.FuseOps(),
        relax.transform.FuseTIR(),
        relax.transform.DeadCodeElimination(),
    ])
    with target:
        return seq(mod)


def schedule(mod, target, target_name: str, database=None, stats: Optional[BuildStats] = None):
    import tvm
    from tvm import relax

    stats = stats if stats is not None else BuildStats()
    tuned: set = set()
    if database is not None:
        from tvm.s_tir import meta_schedule as ms

        before = {gv.name_hint: f for gv, f in mod.functions.items()}
        with target, database:
            mod = relax.transform.MetaScheduleApplyDatabase(enable_warning=False)(mod)
        for gv, f in mod.functions.items():
            if gv.name_hint in before and not before[gv.name_hint].same_as(f):
                tuned.add(gv.name_hint)
        stats.from_database = len(tuned)
    from .target import target_kind

    if target_kind(target_name) == "cuda":
        from tvm.s_tir import dlight as dl

        with target:
            mod = dl.ApplyDefaultSchedule(dl.gpu.Matmul(), dl.gpu.GEMV(), dl.gpu.Reduction(),
                                          dl.gpu.GeneralReduction(), dl.gpu.Fallback())(mod)
        stats.kernels = sum(1 for f in mod.functions.values() if isinstance(f, tvm.tirx.PrimFunc))
        stats.scheduled = {"dlight": stats.kernels - stats.from_database}
        return mod
    from .schedules import schedule_module

    return schedule_module(mod, target, skip=tuned, stats=stats)


def build(mod, target, target_name: str, database=None, stats: Optional[BuildStats] = None):
    """Prepare, schedule and build ``mod``; returns a relax Executable."""
    from tvm import relax

    stats = stats if stats is not None else BuildStats()
    t0 = time.perf_counter()
    mod = prepare(mod, target)
    mod = schedule(mod, target, target_name, database, stats)
    ex = relax.build(mod, target=target)
    stats.seconds = time.perf_counter() - t0
    return ex
