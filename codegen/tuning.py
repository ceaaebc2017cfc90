"""MetaSchedule tuning of a lowered model, with a persistent per-target database.

What happens in `tune`:

1. The model is prepared exactly as the build prepares it (`build.prepare`: legalize and
   fuse), so every fused PrimFunc is one task, identified by its structural hash, the key
   `MetaScheduleApplyDatabase` uses at build time.
2. Each task's time with graphopt's default schedule (`codegen.schedules`) is measured once
   (and cached), and weighted by how many times ``main`` calls it: tasks are tuned
   heaviest first, and a trial budget is shared in proportion to run-time share (with a
   floor, so the top tasks get enough trials to matter); a time budget is shared the same
   way and enforced per task by terminating the task when its slot is spent.
3. MetaSchedule (evolutionary search, XGBoost cost model) tunes each task. Candidates are
   built in this process (a build error is a failed candidate) and run in a popen worker
   (a crash or hang there is a failed candidate; the worker is restarted). Records are
   appended to the database as they are measured, so an interrupted tuning keeps them.
4. The best tuned schedule of each task is timed against the default schedule, in the
   same harness; it is used only when faster. `existing_database` returns the database of
   those winners for the build.

The database lives in ``<cache>/<target key>/graphopt-<version>_tvm-<version>/``
(``workloads.json`` and ``records.json``: MetaSchedule's JSONDatabase, append-only;
``tasks.json``: graphopt's per-task state, replaced atomically). ``<cache>`` is the
``cache_dir`` argument, else ``$GRAPHOPT_CACHE_DIR``, else ``~/.cache/graphopt/tuning``.

MetaSchedule's `TuneContext` imports ``tvm.s_tir.tensor_intrin``, which parses every
target's tensor intrinsics (35-70 s, mostly CUDA's). For CPU targets graphopt installs a
stand-in package that registers only the x86 intrinsics (well under a second), in this
process and in the runner's workers.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import tempfile
import time
import types
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .target import Target, as_target
from typing import Optional

from ..errors import GraphoptError

DEFAULT_CACHE = Path("~/.cache/graphopt/tuning")
MIN_TASK_SHARE = 0.005       # tasks under 0.5% of the run time are not worth trials
MIN_TASK_TRIALS = 16         # with a trial budget: at least this many (or the whole budget) per tuned task
TRIALS_PER_ITER = 16
MAX_TRIALS_TIME_BUDGET = 1000  # per task, when only a time budget is given

_log = logging.getLogger("graphopt.tuning")


# --------------------------------------------------------------------------- tensor intrinsics
def install_cpu_intrin_stub() -> None:
    """Make ``import tvm.s_tir.tensor_intrin`` register only the x86 intrinsics (a CPU
    target needs no others), unless the real package is already imported."""
    name = "tvm.s_tir.tensor_intrin"
    if name in sys.modules:
        return
    import importlib
    import importlib.util

    import tvm.s_tir

    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return
    stub = types.ModuleType(name, "graphopt: CPU-only stand-in for tvm.s_tir.tensor_intrin")
    stub.__path__ = list(spec.submodule_search_locations)
    stub.__package__ = name
    stub.__graphopt_stub__ = True
    sys.modules[name] = stub
    tvm.s_tir.tensor_intrin = stub
    try:
        importlib.import_module(name + ".x86")
    except Exception:  # pragma: no cover - registers nothing, tuning still works for float32
        pass


def _worker_init() -> None:
    """Initializer of MetaSchedule's popen workers (CPU targets)."""
    install_cpu_intrin_stub()
    import tvm.s_tir.meta_schedule  # noqa: F401


# --------------------------------------------------------------------------- database location
def cache_root(cache_dir=None) -> Path:
    if cache_dir:
        return Path(cache_dir).expanduser()
    env = os.environ.get("GRAPHOPT_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    return DEFAULT_CACHE.expanduser()


def database_dir(target, cache_dir=None) -> Path:
    """The tuning database folder of ``target`` (a Target or its name) for these versions."""
    from .artifact import versions

    v = versions()
    safe = lambda s: "".join(c if c.isalnum() or c in ".-_" else "_" for c in str(s))  # noqa: E731
    return cache_root(cache_dir) / safe(as_target(target).key) / f"graphopt-{safe(v['graphopt'])}_tvm-{safe(v['tvm'])}"


WORKLOADS, RECORDS, TASKS = "workloads.json", "records.json", "tasks.json"


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _set_aside(path: Path, lines: list) -> Optional[Path]:
    """Append damaged lines to ``<file>.damaged`` (kept for inspection, never read back)."""
    if not lines:
        return None
    aside = path.with_name(path.name + ".damaged")
    with open(aside, "a") as f:
        f.write("".join(ln.rstrip("\n") + "\n" for ln in lines))
    return aside


def _workload_ok(obj, deep: bool) -> bool:
    if not (isinstance(obj, list) and len(obj) == 2 and all(isinstance(x, str) for x in obj)):
        return False
    if deep:
        from tvm.s_tir.meta_schedule.database import Workload

        try:
            return Workload.from_json(obj) is not None
        except Exception:  # noqa: BLE001 - whatever TVM's parser rejects is damaged
            return False
    return True


def _record_ok(obj, workloads: dict, deep: bool) -> bool:
    if not (isinstance(obj, list) and len(obj) == 2 and isinstance(obj[0], int) and not isinstance(obj[0], bool)
            and obj[0] in workloads and isinstance(obj[1], list) and len(obj[1]) == 4):
        return False
    if deep:
        from tvm.s_tir.meta_schedule.database import TuningRecord, Workload

        try:
            return TuningRecord.from_json(obj[1], Workload.from_json(workloads[obj[0]])) is not None
        except Exception:  # noqa: BLE001
            return False
    return True


def _lines(path: Path) -> tuple[list, bool]:
    """The non-empty lines of ``path`` and whether the file ends cleanly (newline)."""
    if not path.exists():
        return [], True
    raw = path.read_bytes().decode("utf-8", "replace")
    return [ln for ln in raw.split("\n") if ln.strip()], (not raw or raw.endswith("\n"))


def _parse(line: str):
    try:
        return json.loads(line)
    except ValueError:
        return None


def repair_database(folder: Path, deep: bool = False) -> dict:
    """Make the JSONDatabase files of ``folder`` loadable after a torn or damaged write.

    MetaSchedule appends one JSON document per line, and its loader aborts on any line it
    cannot parse, so one torn last line (a ``kill -9`` mid-append) or a garbage line would
    make every later compile fail inside MetaSchedule. Damaged lines are moved to
    ``<file>.damaged``; workloads are renumbered past the removed ones (records refer to
    workloads by line number), and records of a removed workload go with it. ``deep``
    also parses every line with TVM (slower; done when MetaSchedule's loader still fails).
    Returns {"workloads": lines set aside, "records": lines set aside, "aside": [files]}."""
    wpath, rpath = folder / WORKLOADS, folder / RECORDS
    fixed = {"workloads": 0, "records": 0, "aside": []}
    wlines, wclean = _lines(wpath)
    rlines, rclean = _lines(rpath)
    good_w, bad_w, renumber = [], [], {}
    for i, ln in enumerate(wlines):
        obj = _parse(ln)
        if obj is not None and _workload_ok(obj, deep):
            renumber[i] = len(good_w)
            good_w.append((ln, obj))
        else:
            bad_w.append(ln)
    by_old = {i: good_w[j][1] for i, j in renumber.items()}
    good_r, bad_r, renumbered = [], [], False
    for ln in rlines:
        obj = _parse(ln)
        if obj is None or not _record_ok(obj, by_old, deep):
            bad_r.append(ln)
        elif renumber[obj[0]] != obj[0]:
            good_r.append(json.dumps([renumber[obj[0]], obj[1]]))
            renumbered = True
        else:
            good_r.append(ln)
    for path, bad, good, rewrite, key in ((wpath, bad_w, [ln for ln, _ in good_w], not wclean, "workloads"),
                                          (rpath, bad_r, good_r, not rclean or renumbered, "records")):
        if bad:
            fixed[key] = len(bad)
            fixed["aside"].append(str(_set_aside(path, bad)))
        if (bad or rewrite) and path.exists():
            _atomic_write_text(path, "".join(ln + "\n" for ln in good))
    return fixed


def _fresh_start(folder: Path) -> list:
    """Move both database files aside whole (MetaSchedule still cannot read them)."""
    stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    moved = []
    for p in (folder / WORKLOADS, folder / RECORDS):
        if p.exists():
            dest = p.with_name(f"{p.name}.damaged-{stamp}")
            p.replace(dest)
            moved.append(str(dest))
    return moved


def open_json_database(folder: Path, create: bool = True):
    from tvm.s_tir import meta_schedule as ms

    folder.mkdir(parents=True, exist_ok=True)

    def open_():
        return ms.database.JSONDatabase(path_workload=str(folder / WORKLOADS),
                                        path_tuning_record=str(folder / RECORDS), allow_missing=create)

    fixed = repair_database(folder)
    try:
        db = open_()
    except Exception:  # noqa: BLE001 - a line that parses as JSON but not as MetaSchedule's
        deep = repair_database(folder, deep=True)
        fixed = {k: fixed[k] + deep[k] for k in fixed}
        try:
            db = open_()
        except Exception as e:  # noqa: BLE001
            moved = _fresh_start(folder)
            _warn(f"tuning database {folder} cannot be read ({type(e).__name__}); moved it aside to "
                  f"{', '.join(moved)} and starting a new one")
            return open_()
    if fixed["workloads"] or fixed["records"]:
        _warn(f"tuning database {folder}: set aside {fixed['workloads']} damaged workload and "
              f"{fixed['records']} damaged record line(s) in {', '.join(sorted(set(fixed['aside'])))}")
    return db


def _warn(msg: str) -> None:
    # straight to stderr, like the lock's message: a damaged database is the user's to know
    # about whatever logging is configured
    print(f"graphopt: warning: {msg}", file=sys.stderr, flush=True)


_NUM = (int, float)
_TASK_FIELDS = {"default_ms": _NUM, "tuned_ms": _NUM, "flops": _NUM, "seconds": _NUM, "seconds_live": _NUM,
                "trials": int, "failed": int, "used": bool, "name": str}


def _task_state_ok(key: str, v) -> bool:
    if key == "_budgets":
        return isinstance(v, dict) and all(
            isinstance(b, list) and all(isinstance(x, dict) and isinstance(x.get("trials", 0), int)
                                        and isinstance(x.get("minutes") or 0, _NUM) for x in b) for b in v.values())
    if not isinstance(v, dict):
        return False
    for f, typ in _TASK_FIELDS.items():
        x = v.get(f)
        if x is None:
            continue
        if not isinstance(x, typ) or (typ is not bool and isinstance(x, bool)):
            return False
    return True


def _load_tasks_state(folder: Path) -> dict:
    """graphopt's per-task state; a damaged ``tasks.json`` is moved aside (with a warning)
    and the defaults are timed again."""
    path = folder / TASKS
    try:
        text = path.read_text()
    except OSError:
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict) and all(_task_state_ok(k, v) for k, v in data.items()):
        return data
    aside = path.with_name(f"{TASKS}.damaged-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
    try:
        path.replace(aside)
    except OSError:
        pass
    _warn(f"tuning state {path} is damaged; moved it aside to {aside.name}, task timings start over")
    return {}


def _save_tasks_state(folder: Path, state: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    _atomic_write_text(folder / TASKS, json.dumps(state, indent=1, sort_keys=True))


# --------------------------------------------------------------------------- tasks
@dataclass
class TaskResult:
    name: str
    key: str
    calls: int
    flops: float
    default_ms: Optional[float] = None
    tuned_ms: Optional[float] = None
    trials: int = 0
    failed: int = 0
    used: bool = False          # the tuned schedule is faster and is used
    tuned_now: bool = False     # trials were spent in this compile
    error: Optional[str] = None

    @property
    def share_ms(self) -> float:
        return (self.default_ms or 0.0) * self.calls


@dataclass
class TuneInfo:
    database: str
    trials: int = 0             # trials spent in this compile
    failed: int = 0
    seconds: float = 0.0
    reused: bool = False        # nothing needed tuning: everything came from the database
    interrupted: bool = False
    tasks: list = field(default_factory=list)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["tasks"] = [asdict(t) for t in self.tasks]
        return d


def _task_mods(mod, target):
    """[(name, key, normalized task IRModule, calls)] of the prepared module's PrimFuncs."""
    import tvm
    from tvm import tirx
    from tvm.s_tir.meta_schedule.tune_context import _normalize_mod

    from .build import prepare
    from .profile import call_counts

    prepared = prepare(mod, target)
    counts = call_counts(prepared)
    out, seen = [], {}
    for gv, f in prepared.functions.items():
        if not isinstance(f, tirx.PrimFunc):
            continue
        if f.attrs is not None and "tirx.is_scheduled" in f.attrs:
            continue
        tmod = _normalize_mod(f)
        key = f"{_shash(tmod) & 0xFFFFFFFFFFFFFFFF:016x}"
        n = counts.get(gv.name_hint, 1)
        if key in seen:  # identical kernels (same shapes): one task, calls added
            seen[key][3] += n
            continue
        row = [gv.name_hint, key, tmod, n]
        seen[key] = row
        out.append(row)
    return [tuple(r) for r in out]


def _shash(mod) -> int:
    import tvm_ffi

    return int(tvm_ffi.structural_hash(mod))


def _shash_str(items) -> str:
    import hashlib

    return hashlib.sha256("\n".join(items).encode()).hexdigest()[:16]


def _flops(tmod) -> float:
    try:
        from tvm.s_tir.analysis import estimate_tir_flops

        return float(estimate_tir_flops(tmod))
    except Exception:
        return 0.0


def time_kernel(tmod, target, min_ms: float = 20.0, repeat: int = 3) -> float:
    """ms per call of the (scheduled) one-function module ``tmod``: the best of ``repeat``
    rounds of enough calls to last ``min_ms``."""
    import tvm

    dev = tvm.cpu(0) if "cpu" in target.keys else tvm.cuda(0)
    lib = tvm.compile(tmod, target=target)
    fn = lib["main"]
    from .profile import random_args

    args = random_args(tmod["main"], dev)
    if args is None:
        raise ValueError("kernel has symbolic shapes; it cannot be timed on its own")
    fn(*args)
    dev.sync()
    t0 = time.perf_counter()
    fn(*args)
    dev.sync()
    one = max(time.perf_counter() - t0, 1e-6)
    number = max(1, min(10000, int(min_ms / 1000 / one)))
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn(*args)
        dev.sync()
        best = min(best, (time.perf_counter() - t0) / number)
    return best * 1000


def default_scheduled(tmod, target: Target):
    import tvm

    from .build import schedule

    # schedule() updates the module it is given: work on a copy, the task keeps its TIR
    return schedule(tvm.IRModule(dict(tmod.functions.items())), target)


def tuned_scheduled(tmod, target, database):
    """The task module with the database's best schedule applied, or None."""
    sch = database.query_schedule(tmod, target, workload_name="main")
    if sch is None:
        return None
    return sch.mod


# --------------------------------------------------------------------------- builder / runner
def _inprocess_builder():
    from tvm.s_tir.meta_schedule.builder import BuilderResult, PyBuilder
    from tvm.s_tir.meta_schedule.builder.local_builder import default_build, default_export
    from tvm.ir.utils import derived_object

    @derived_object
    class InProcessBuilder(PyBuilder):
        """Builds candidates in this process: an exception is a failed candidate (no popen
        worker to start per batch; LLVM does not crash on MetaSchedule's candidates)."""

        def build(self, build_inputs):
            out = []
            for bi in build_inputs:
                if _STOP["requested"]:
                    out.append(BuilderResult(None, INTERRUPTED))
                    continue
                try:
                    out.append(BuilderResult(default_export(default_build(bi.mod, bi.target, None)), None))
                except Exception as e:  # noqa: BLE001 - any failure is the candidate's
                    out.append(BuilderResult(None, f"graphopt builder: {type(e).__name__}: {e}"))
            return out

    return InProcessBuilder()


INTERRUPTED = "graphopt: tuning interrupted (Ctrl-C); candidate not built"
_STOP = {"requested": False}


class _SigintGuard:
    """MetaSchedule's C++ loop swallows KeyboardInterrupt raised in its Python callbacks.
    During tuning, the first Ctrl-C asks to stop (the batch in flight is dropped, what was
    measured stays in the database, and `tune` raises KeyboardInterrupt); a second one
    kills the process (SIGINT's default action)."""

    def __enter__(self):
        import signal

        _STOP["requested"] = False
        self.prev = None
        try:
            self.prev = signal.signal(signal.SIGINT, self._handler)
        except ValueError:  # not the main thread
            pass
        return self

    @staticmethod
    def _handler(signum, frame):
        import signal

        _STOP["requested"] = True
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        sys.stderr.write("\ngraphopt: stopping tuning after this batch (Ctrl-C again to kill)\n")
        sys.stderr.flush()

    def __exit__(self, *exc):
        import signal

        if self.prev is not None:
            signal.signal(signal.SIGINT, self.prev)
        return False


def make_builder(target: Target):
    """The MetaSchedule builder (tests replace this to simulate failures)."""
    return _inprocess_builder()


def make_runner(target: Target):
    from tvm.s_tir.meta_schedule.runner import EvaluatorConfig, LocalRunner

    cfg = EvaluatorConfig(number=3, repeat=1, min_repeat_ms=40, enable_cpu_cache_flush=False)
    return LocalRunner(timeout_sec=120, evaluator_config=cfg,
                       initializer=_cuda_worker_init if target.is_cuda else _worker_init)


def _cuda_worker_init() -> None:
    import tvm.s_tir.meta_schedule  # noqa: F401
    import tvm.s_tir.tensor_intrin  # noqa: F401


# --------------------------------------------------------------------------- progress
class Progress:
    def __init__(self, enabled: bool, total_tasks: int, trial_budget: Optional[int], deadline: Optional[float]):
        self.enabled = enabled
        self.tty = enabled and sys.stderr.isatty()
        self.total_tasks = total_tasks
        self.trial_budget = trial_budget
        self.deadline = deadline
        self.t0 = time.monotonic()
        self.done = 0
        self.trials = 0
        self.task = ""
        self.best_gflops = 0.0

    def show(self, final: bool = False) -> None:
        if not self.enabled or not self.total_tasks or (final and not self.tty):
            return
        el = time.monotonic() - self.t0
        budget = f"/{self.trial_budget}" if self.trial_budget else ""
        left = f", {max(0.0, self.deadline - time.monotonic()) / 60:.1f} min left" if self.deadline else ""
        width = 20
        frac = self.done / self.total_tasks if self.total_tasks else 1.0
        bar = "#" * int(frac * width) + "." * (width - int(frac * width))
        msg = (f"tuning [{bar}] tasks {self.done}/{self.total_tasks}, trials {self.trials}{budget}, "
               f"best {self.best_gflops:.1f} GFLOP/s ({self.task}), {el:.0f}s{left}")
        if self.tty:
            sys.stderr.write("\r\x1b[K" + msg + ("\n" if final else ""))
        else:
            sys.stderr.write(msg + "\n")
        sys.stderr.flush()


def _measure_callback(on_batch):
    from tvm.s_tir.meta_schedule.measure_callback import PyMeasureCallback
    from tvm.ir.utils import derived_object

    @derived_object
    class Callback(PyMeasureCallback):
        def apply(self, task_scheduler, task_id, measure_candidates, builder_results, runner_results):
            secs, failed, first_err = [], 0, None
            skipped = 0
            for br, rr in zip(builder_results, runner_results):
                err = br.error_msg or rr.error_msg
                if br.error_msg == INTERRUPTED:
                    skipped += 1
                    continue
                if err or not rr.run_secs:
                    failed += 1
                    first_err = first_err or err
                else:
                    secs.append(sum(float(s) for s in rr.run_secs) / len(rr.run_secs))
            if on_batch(len(measure_candidates) - skipped, failed, min(secs) if secs else None, first_err) \
                    or _STOP["requested"]:
                task_scheduler.terminate_task(task_id)

    return Callback()


# --------------------------------------------------------------------------- budget
def allocate(tasks: list[TaskResult], trials: int, minutes: Optional[float]) -> dict:
    """{task key: (trials, seconds or None)}: heaviest first, proportional to share."""
    ranked = sorted(tasks, key=lambda t: -t.share_ms)
    total = sum(t.share_ms for t in ranked) or 1.0
    ranked = [t for t in ranked if t.share_ms / total >= MIN_TASK_SHARE] or ranked[:1]
    sub = sum(t.share_ms for t in ranked) or 1.0
    out: dict = {}
    left = trials
    for t in ranked:
        share = t.share_ms / sub
        secs = minutes * 60 * share if minutes else None
        if trials:
            if left <= 0:
                break
            n = min(left, max(min(MIN_TASK_TRIALS, trials), int(round(trials * share))))
            left -= n
        else:
            n = MAX_TRIALS_TIME_BUDGET
        out[t.key] = (n, secs)
    return out


# --------------------------------------------------------------------------- entry points
def existing_database(target: Target, cache_dir=None):
    """A database of the tuned schedules that beat graphopt's defaults (from earlier
    compiles for this target and these versions), or None when there are none."""
    folder = database_dir(target, cache_dir)
    state = _load_tasks_state(folder)
    winners = [k for k, v in state.items() if not k.startswith("_") and isinstance(v, dict) and v.get("used")]
    if not winners or not (folder / WORKLOADS).exists():
        return None
    if target.is_cpu:
        install_cpu_intrin_stub()
    return _winners_database(open_json_database(folder), target.tvm, {k: state[k] for k in winners})


def _winners_database(db, target, winners: dict):
    """A MemoryDatabase holding the best record of each winning task (the JSON database
    may also hold tasks whose tuned schedule lost to the default)."""
    from tvm.s_tir import meta_schedule as ms

    mem = ms.database.MemoryDatabase()
    wanted = set(winners)
    import tvm

    n = 0
    seen = {}
    for rec in db.get_all_tuning_records():
        wl = rec.workload
        key = f"{_shash(wl.mod) & 0xFFFFFFFFFFFFFFFF:016x}"
        if key in wanted and key not in seen:
            seen[key] = wl
    for key, wl in seen.items():
        top = db.get_top_k(wl, 1)
        if top and _replays(top[0], wl, target):
            mem.commit_workload(wl.mod)
            mem.commit_tuning_record(top[0])
            n += 1
        elif top:
            _warn(f"tuning database {db.path_tuning_record}: the best record of task {winners[key].get('name', key)} "
                  "does not apply to its workload (damaged); using the default schedule")
    return mem if n else None


def _replays(record, workload, target) -> bool:
    """Whether ``record``'s trace applies to ``workload`` (a damaged record, numbers
    changed inside a valid trace, would otherwise fail the build inside MetaSchedule)."""
    from tvm.s_tir import meta_schedule as ms

    probe = ms.database.MemoryDatabase()
    try:
        probe.commit_workload(workload.mod)
        probe.commit_tuning_record(record)
        return probe.query_schedule(workload.mod, target, workload_name="main") is not None
    except Exception:  # noqa: BLE001 - TVM's replay errors: the record is damaged
        return False


@contextlib.contextmanager
def folder_lock(folder: Path):
    """One process at a time tunes into a database folder: two writers would interleave
    their records and task state. A second process waits, then finds the work done."""
    import fcntl

    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"graphopt: waiting for another process tuning into {folder}", file=sys.stderr, flush=True)
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def tune(mod, target: Target, trials=0, minutes=None, cache_dir=None, progress=False):
    """Tune the tasks of ``mod`` (a lowered relax module) within ``trials`` and/or
    ``minutes``; returns (database for the build or None, info dict)."""
    trials = int(trials or 0)
    if trials < 0 or (minutes is not None and minutes <= 0):
        raise GraphoptError("the tuning budget must be positive (trials >= 0, minutes > 0)")
    folder = database_dir(target, cache_dir)
    with folder_lock(folder):
        return _tune(mod, target, trials, minutes, folder, progress)


def _tune(mod, gtarget: Target, trials, minutes, folder, progress):
    from tvm.s_tir import meta_schedule as ms

    target = gtarget.tvm
    if gtarget.is_cpu:
        install_cpu_intrin_stub()
    t_start = time.monotonic()
    deadline = t_start + minutes * 60 if minutes else None
    db = open_json_database(folder)
    state = _load_tasks_state(folder)
    info = TuneInfo(database=str(folder))

    # 1. tasks and their default-schedule times (cached in tasks.json)
    tasks: list[TaskResult] = []
    mods = {}
    for name, key, tmod, calls in _task_mods(mod, target):
        st = state.setdefault(key, {})
        tr = TaskResult(name, key, calls, st.get("flops") or _flops(tmod), default_ms=st.get("default_ms"),
                        tuned_ms=st.get("tuned_ms"), trials=int(st.get("trials", 0)), failed=int(st.get("failed", 0)),
                        used=bool(st.get("used")))
        st.update(name=name, flops=tr.flops)
        if tr.default_ms is None:
            try:
                tr.default_ms = time_kernel(default_scheduled(tmod, gtarget), target)
            except Exception as e:  # noqa: BLE001
                tr.default_ms, tr.error = 0.0, f"default schedule could not be timed: {e}"
            st["default_ms"] = tr.default_ms
        tasks.append(tr)
        mods[key] = tmod
    _save_tasks_state(folder, state)

    # 2. budget (a model whose tuning already ran to the end of this budget, or a larger
    # one, is not tuned again: with a time budget, unreached tasks stay untuned)
    model_key = f"{_shash_str(sorted(t.key for t in tasks))}"
    done_budgets = state.setdefault("_budgets", {}).get(model_key, [])
    covered = any((not trials or b.get("trials", 0) >= trials) and (not minutes or (b.get("minutes") or 0) >= minutes)
                  and (trials or b.get("minutes")) for b in done_budgets)
    plan = {} if covered else allocate(tasks, trials, minutes)
    todo = []
    for t in tasks:
        if t.key not in plan:
            continue
        n, secs = plan[t.key]
        st = state[t.key]
        if trials and t.trials >= n:
            continue
        if not trials and (st.get("seconds", 0.0) >= 0.9 * (secs or 0) or t.trials >= n):
            continue
        todo.append((t, n, secs))
    todo.sort(key=lambda x: -x[0].share_ms)
    bar = Progress(progress, len(todo), trials or None, deadline)

    builder = runner = None
    interrupted = None
    guard = _SigintGuard()
    guard.__enter__()
    try:
        for t, n, secs in todo:
            if _STOP["requested"]:
                raise KeyboardInterrupt
            if deadline and time.monotonic() >= deadline:
                break
            if builder is None:
                builder, runner = make_builder(gtarget), make_runner(gtarget)
            st = state[t.key]
            want = n - t.trials if trials else n
            task_deadline = time.monotonic() + secs if secs else None
            if deadline:
                task_deadline = min(task_deadline or deadline, deadline)
            bar.task, bar.best_gflops = t.name, 0.0
            bar.show()
            t_task = time.monotonic()

            def on_batch(count, failed, best_s, err, t=t, st=st, t_task=t_task, task_deadline=task_deadline):
                t.trials += count
                t.failed += failed
                info.trials += count
                info.failed += failed
                bar.trials += count
                if best_s and t.flops:
                    bar.best_gflops = max(bar.best_gflops, t.flops / best_s / 1e9)
                if err and t.error is None:
                    t.error = str(err).strip().splitlines()[-1][:200]
                st.update(trials=t.trials, failed=t.failed)
                st["seconds_live"] = time.monotonic() - t_task
                _save_tasks_state(folder, state)
                bar.show()
                return bool(task_deadline and time.monotonic() >= task_deadline)

            ctx = ms.TuneContext(mod=mods[t.key], target=target, space_generator="post-order-apply",
                                 search_strategy=ms.search_strategy.EvolutionarySearch(
                                     population_size=min(512, max(32, 4 * want))),
                                 task_name=t.name, rand_state=len(t.key) + t.trials, num_threads="physical",
                                 logger=_quiet_logger())
            callbacks = list(ms.MeasureCallback.create("default")) + [_measure_callback(on_batch)]
            t.tuned_now = True
            try:
                ms.tune_tasks(tasks=[ctx], task_weights=[1.0], work_dir=tempfile.gettempdir(),
                              max_trials_global=want, max_trials_per_task=want,
                              num_trials_per_iter=min(TRIALS_PER_ITER, max(1, want)), builder=builder,
                              runner=runner, database=db, cost_model=ms.cost_model.XGBModel(
                                  num_tuning_cores=max(1, os.cpu_count() or 1)),
                              measure_callbacks=callbacks, task_scheduler="round-robin")
            except KeyboardInterrupt:
                raise
            except Exception as e:  # noqa: BLE001 - a task that cannot be tuned keeps its default
                if isinstance(e.__cause__, KeyboardInterrupt) or "KeyboardInterrupt" in str(e):
                    raise KeyboardInterrupt from e
                t.error = f"tuning failed: {type(e).__name__}: {str(e).strip().splitlines()[-1][:200] if str(e).strip() else ''}"
            st["seconds"] = st.get("seconds", 0.0) + (time.monotonic() - t_task)
            st.pop("seconds_live", None)
            if _STOP["requested"]:
                _save_tasks_state(folder, state)
                raise KeyboardInterrupt
            bar.done += 1
            _compare(t, mods[t.key], gtarget, db, st)
            _save_tasks_state(folder, state)
            bar.show()
    except KeyboardInterrupt as e:
        interrupted = e
        info.interrupted = True
    finally:
        guard.__exit__(None, None, None)
        for t in tasks:
            st = state[t.key]
            if "seconds_live" in st:
                st["seconds"] = st.get("seconds", 0.0) + st.pop("seconds_live")
        _save_tasks_state(folder, state)
        bar.show(final=True)
    if interrupted is not None:
        raise interrupted

    if not covered:
        state["_budgets"].setdefault(model_key, []).append({"trials": trials, "minutes": minutes})
    # tasks tuned in an earlier compile but never compared (interrupted then)
    for t in tasks:
        if t.trials and t.tuned_ms is None and not t.tuned_now:
            _compare(t, mods[t.key], gtarget, db, state[t.key])
    _save_tasks_state(folder, state)
    info.seconds = time.monotonic() - t_start
    info.reused = not todo
    info.tasks = sorted(tasks, key=lambda t: -t.share_ms)
    winners = {t.key: state[t.key] for t in tasks if t.used}
    database = _winners_database(db, target, winners) if winners else None
    return database, info.as_dict()


def _compare(t: TaskResult, tmod, gtarget: Target, db, st: dict) -> None:
    """Time the best tuned schedule against the default one; record which wins."""
    target = gtarget.tvm
    try:
        tuned = tuned_scheduled(tmod, target, db)
        if tuned is None:
            t.tuned_ms, t.used = None, False
        else:
            t.tuned_ms = time_kernel(tuned, target)
            if t.default_ms:  # re-time the default next to it: the machine's load changes
                t.default_ms = min(t.default_ms, time_kernel(default_scheduled(tmod, gtarget), target))
            t.used = t.tuned_ms < (t.default_ms or float("inf"))
    except Exception as e:  # noqa: BLE001
        t.used = False
        t.error = t.error or f"tuned schedule could not be timed: {type(e).__name__}: {e}"[:300]
    st.update(tuned_ms=t.tuned_ms, default_ms=t.default_ms, used=t.used, trials=t.trials, failed=t.failed)


def _quiet_logger():
    lg = logging.getLogger("graphopt.tuning.metaschedule")
    if os.environ.get("GRAPHOPT_TUNING_LOG"):
        if not lg.handlers:
            lg.addHandler(logging.StreamHandler(sys.stderr))
        lg.setLevel(logging.DEBUG)
        return lg
    if not lg.handlers:
        lg.addHandler(logging.NullHandler())
        lg.propagate = False
    lg.setLevel(logging.WARNING)
    return lg


def format_tasks(info: dict, top: int = 20) -> str:
    """The per-task table of a tuning info dict."""
    rows = ["  task                                    calls  default ms  tuned ms  trials  failed  used"]
    for t in info.get("tasks", [])[:top]:
        tuned = f"{t['tuned_ms']:.3f}" if t.get("tuned_ms") is not None else "-"
        dflt = f"{t['default_ms']:.3f}" if t.get("default_ms") is not None else "-"
        rows.append(f"  {t['name'][:40]:40s} {t['calls']:5d}  {dflt:>10s}  {tuned:>8s}  {t['trials']:6d}  "
                    f"{t['failed']:6d}  {'yes' if t.get('used') else 'no'}"
                    + (f"  ({t['error']})" if t.get("error") else ""))
    more = len(info.get("tasks", [])) - top
    if more > 0:
        rows.append(f"  ... {more} more tasks")
    return "\n".join(rows)
