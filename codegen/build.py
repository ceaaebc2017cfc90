"""Relax IRModule -> executable: TVM's legalization and fusion, then graphopt's default
schedules (CPU) or dlight's GPU rules (CUDA), tuned schedules from a database first."""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Optional

# TVM's C++ LOG(WARNING)/LOG(INFO) lines ("[23:41:25] /project/src/...cc:276: Warning: ...").
_NATIVE_LOG = re.compile(r"^\[\d\d:\d\d:\d\d\] \S+:\d+: ")


def show_native_log() -> bool:
    """Whether TVM's native log lines reach the terminal: under ``--debug`` (the CLI sets
    GRAPHOPT_DEBUG) or GRAPHOPT_NATIVE_LOG=1."""
    return any(os.environ.get(k, "") not in ("", "0") for k in ("GRAPHOPT_DEBUG", "GRAPHOPT_NATIVE_LOG"))


@contextlib.contextmanager
def native_output():
    """Keep TVM's native log lines (its C++ LOG(WARNING) writes to fd 2, out of reach of
    Python's warnings filter: "Scope Saving", "Fast mode segfaults when there are
    out-of-bounds indices", "BlockBuilder destroyed with remaining blocks") off the user's
    terminal: fd 2 goes to a temporary file for the block; afterwards every other line is
    written back to stderr, and the native ones too under `show_native_log` or when the
    block fails with something other than a user error."""
    from ..errors import GraphoptError

    if show_native_log():
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no fd 2 (embedded interpreters): nothing to hide
        yield
        return
    buf = tempfile.TemporaryFile()
    os.dup2(buf.fileno(), 2)
    keep_native = False
    try:
        yield
    except GraphoptError:
        raise
    except BaseException:
        keep_native = True
        raise
    finally:
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(saved, 2)
        os.close(saved)
        buf.seek(0)
        text = buf.read().decode("utf-8", "replace")
        buf.close()
        lines = [ln for ln in text.splitlines(keepends=True) if keep_native or not _NATIVE_LOG.match(ln)]
        if lines:
            sys.stderr.write("".join(lines))
            sys.stderr.flush()


@dataclass
class BuildStats:
    seconds: float = 0.0
    kernels: int = 0
    scheduled: dict = field(default_factory=dict)   # rule name -> count
    from_database: int = 0
    kernel_names: list = field(default_factory=list)  # the built PrimFuncs (the fusion report's kernels)
    calls: list = field(default_factory=list)         # the kernel map (codegen.kernel_map), when asked for
    calls_error: Optional[str] = None                 # why the kernel map is empty, if it failed


def prepare(mod, target, snapshots: Optional[list] = None):
    """Legalize and fuse: the module of fused PrimFuncs that schedules (and tuning) see.
    ``snapshots``: a list that receives the module before FuseOps and after it (what the
    build's kernel map, codegen.kernel_map, reads; the passes run the same either way)."""
    import tvm
    from tvm import relax

    stages = [[relax.transform.LegalizeOps(), relax.transform.AnnotateTIROpPattern(),
               relax.transform.FoldConstant()],
              [relax.transform.FuseOps()],
              [relax.transform.FuseTIR(), relax.transform.DeadCodeElimination()]]
    with target:
        if snapshots is None:
            mod = tvm.transform.Sequential([p for st in stages for p in st])(mod)
        else:
            for st in stages[:2]:
                mod = tvm.transform.Sequential(st)(mod)
                snapshots.append(mod)
            mod = tvm.transform.Sequential(stages[2])(mod)
    return nan_safe_module(mod)


def nan_safe_module(mod):
    """``mod`` with every PrimFunc made NaN-propagating (`nan_safe_minmax`)."""
    from tvm import tirx

    for gv, f in list(mod.functions.items()):
        if isinstance(f, tirx.PrimFunc):
            mod[gv] = nan_safe_minmax(f)
    return mod


# Reductions whose max/min update may become a compare-select: their schedules never need
# TVM to recognize the reducer (the window rule keeps the window loops serial), unlike the
# row reductions of softmax, whose rfactor does. Those keep LLVM's maxnum; ReduceMax and
# GlobalMaxPool check for NaN in the lowering instead.
_NAN_SAFE_REDUCTIONS = ("pool_max",)


def nan_safe_minmax(func):
    """``func`` with float ``max``/``min`` written as compare-selects that keep NaN.

    TVM lowers ``max``/``min`` to LLVM's ``maxnum``/``minnum``, which return the other
    operand when one is NaN: Relu, Clip, Max/Min, HardSigmoid/HardSwish and the fused
    epilogues of the packed kernels turned NaN into numbers (onnxruntime and torch keep
    it). ``select(a < b, b, a)`` is one compare-select (x86's ``maxps`` with the operands
    ordered to return ``a`` on NaN); where neither operand is a constant, a NaN in ``b``
    is checked too. Reduction updates (``acc = max(acc, x)``) keep the reducer form TVM's
    rfactor recognizes, except in `_NAN_SAFE_REDUCTIONS`, whose identity becomes -inf/+inf
    so that a window of -inf gives -inf."""
    import tvm_ffi
    from tvm import s_tir, tirx

    def minmax(e):
        if not _dtype(e).startswith(("float", "bfloat")):
            return e
        a, b = e.a, e.b
        if isinstance(a, tirx.FloatImm):
            a, b = b, a  # the constant (never NaN here) on the unchecked side
        keep_b = (a < b) if isinstance(e, tirx.Max) else (a > b)
        out = tirx.Select(keep_b, b, a)
        if not isinstance(b, tirx.FloatImm):
            # TVM's isnan takes no bfloat16 (the bf16 attention cases crashed): widen it
            bf = _dtype(b).startswith("bfloat")
            out = tirx.Select(tirx.isnan(tirx.Cast("float32", b) if bf else b), b, out)
        return out

    def rewrite(expr):
        return tvm_ffi.structural_map(expr, [((tirx.Max, tirx.Min), minmax)])

    def block(blk):
        st = blk.body
        if not isinstance(st, tirx.BufferStore):
            return blk
        v = st.value
        update = isinstance(v, (tirx.Max, tirx.Min)) and _reads_itself(st, v.a)
        init = blk.init
        if update and blk.name_hint.startswith(_NAN_SAFE_REDUCTIONS):
            value = minmax(type(v)(v.a, rewrite(v.b)))
            if isinstance(init, tirx.BufferStore) and _dtype(init.value).startswith("float"):
                inf = float("-inf") if isinstance(v, tirx.Max) else float("inf")
                init = tirx.BufferStore(init.buffer, tirx.const(inf, _dtype(init.value)), init.indices)
        elif update:
            value = type(v)(v.a, rewrite(v.b))
        else:
            value = rewrite(v)
        if value.same_as(v):
            return blk
        return s_tir.SBlock(blk.iter_vars, blk.reads, blk.writes, blk.name_hint,
                            tirx.BufferStore(st.buffer, value, st.indices), init, blk.alloc_buffers,
                            blk.match_buffers, blk.annotations)

    return tvm_ffi.structural_map(func, [(s_tir.SBlock, block)])


def _dtype(e) -> str:
    return str(getattr(e, "dtype", None) or e.ty)


def _reads_itself(store, e) -> bool:
    """Whether ``e`` loads the element ``store`` writes (a reduction's accumulator)."""
    from tvm.ir.expr import TensorLoad  # tirx.BufferLoad is a constructor function in 0.27

    src = getattr(e, "source", None)
    return (isinstance(e, TensorLoad) and src is not None and src.same_as(store.buffer)
            and len(e.indices) == len(store.indices)
            and all(i.same_as(j) for i, j in zip(e.indices, store.indices)))


def schedule(mod, gtarget, database=None, stats: Optional[BuildStats] = None):
    """Schedule every PrimFunc of a prepared module for ``gtarget`` (a codegen Target):
    tuned schedules from ``database`` first, then dlight's rules (CUDA) or graphopt's."""
    import tvm
    from tvm import relax

    stats = stats if stats is not None else BuildStats()
    target = gtarget.tvm
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
    if gtarget.is_cuda:
        from tvm.s_tir import dlight as dl

        with target:
            mod = dl.ApplyDefaultSchedule(dl.gpu.Matmul(), dl.gpu.GEMV(), dl.gpu.Reduction(),
                                          dl.gpu.GeneralReduction(), dl.gpu.Fallback())(mod)
        stats.kernels = sum(1 for f in mod.functions.values() if isinstance(f, tvm.tirx.PrimFunc))
        stats.scheduled = {"dlight": stats.kernels - stats.from_database}
        return mod
    from .schedules import schedule_module

    return schedule_module(mod, target, skip=tuned, stats=stats)


def build(mod, gtarget, database=None, stats: Optional[BuildStats] = None, extra=None, var_values=None):
    """Prepare, schedule and build ``mod``; returns a relax Executable. ``extra``: relax
    functions by name added after preparation (they take part in no legalization or fusion;
    adding them before, LegalizeOps fails on modules with fused groups). ``var_values``
    (the lowering's `Lowered.var_values`): record the kernel map in ``stats.calls``."""
    from tvm import relax, tirx

    stats = stats if stats is not None else BuildStats()
    target = gtarget.tvm
    t0 = time.perf_counter()
    with native_output():
        snaps = [] if var_values is not None else None
        mod = prepare(mod, target, snaps)
        for name, fn in (extra or {}).items():
            mod[name] = fn
        mod = schedule(mod, gtarget, database, stats)
        stats.kernel_names = [gv.name_hint for gv, f in mod.functions.items() if isinstance(f, tirx.PrimFunc)]
        if snaps is not None:
            from .kernel_map import kernel_map

            try:
                stats.calls = kernel_map(snaps[0], snaps[1], mod, var_values)
            except Exception as e:  # a diagnostic's failure must not fail the compile
                stats.calls, stats.calls_error = [], f"{type(e).__name__}: {e}"[:300]
        ex = relax.build(mod, target=target)
    stats.seconds = time.perf_counter() - t0
    return ex
