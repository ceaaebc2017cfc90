"""The benchmark's parent process: prepare each case once, start one worker process per
system, interleave the systems' timing rounds, collect latency, compile time, peak memory and
error against the oracle, and write the table, JSON and chart.

    from graphopt.bench.runner import Settings, run_suite, write_outputs
    entries, meta = run_suite(["squeezenet", "mlp"], ["graphopt", "onnxruntime"], Settings(rounds=10))
    write_outputs("benchmarks/results", entries, meta)
"""

from __future__ import annotations

import importlib.util
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

from .cases import Case
from .harness import BASELINE, Entry, bar_chart, fill_ratios, machine, markdown, summarize, write_json
from .systems import PEAK_N, PEAK_SYSTEMS, SYSTEMS, TORCH_SYSTEMS, applies, canonical
from .workers import Worker, WorkerError


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        return os.cpu_count() or 1


@dataclass
class Settings:
    rounds: int = 20                 # timed rounds per model; every round calls each system once
    warmup: int = 2                  # untimed rounds first
    tune_minutes: float = 0.0        # graphopt-tuned's budget per model (0: graphopt-tuned not run)
    tune_cache: Optional[str] = None  # reuse a tuning database (default: a fresh one per run)
    threads: int = field(default_factory=_cores)
    opt_level: str = "O2"
    min_sample_ms: float = 5.0       # calls are batched so that one sample lasts at least this
    cap_s: float = 120.0             # timing budget of one system on one model (seconds)
    slow_cap_s: float = 30.0         # ... for TVM's from_onnx (untuned TVM is 50-80x slower)
    prepare_timeout_s: float = 1200.0  # compile (+ tune: the budget is added)
    peak: bool = True                # measure the machine's float32 matmul peak first
    small: bool = False              # toy sizes of the torch models (checks the machinery)
    workdir: Optional[str] = None    # where cases and worker logs go (default: a temporary folder)
    keep_workdir: bool = False


def _log_default(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _available(system: str) -> Optional[str]:
    """Why ``system`` cannot run here, or None."""
    if system == "openvino" and importlib.util.find_spec("openvino") is None:
        return "OpenVINO not installed (pip install openvino): skipped"
    if system in TORCH_SYSTEMS and importlib.util.find_spec("torch") is None:
        return "torch not installed: skipped"
    return None


def measure_peak(settings: Settings, workdir: Path, log: Callable = _log_default) -> dict:
    """The machine's float32 matmul peak on the benchmark's threads: a 1024^3 matmul in numpy
    and in torch, each in its own process, the fastest of 30 calls (noise only ever slows a
    call down; the peak is the physical limit), the better of the two."""
    flop = 2.0 * PEAK_N ** 3
    out: dict = {"n": PEAK_N, "threads": settings.threads, "how": "fastest of 30 calls"}
    dummy = Case("peak", "", "", [])
    for system in PEAK_SYSTEMS:
        if system == "torch-matmul" and importlib.util.find_spec("torch") is None:
            continue
        w = Worker(system, settings.threads, str(workdir / f"peak-{system}.log"))
        try:
            r = w.request({"cmd": "prepare", "system": system, "case": dummy.to_dict(), "options": {}}, timeout=300)
            if not r["ok"]:
                out[system] = r["error"]
                continue
            w.request({"cmd": "run", "n": 3, "inner": 1}, timeout=300)
            ms = w.request({"cmd": "run", "n": 30, "inner": 1}, timeout=600)["ms"]
            out[system] = flop / (min(ms) / 1e3) / 1e9
            out[system + " median"] = flop / (statistics.median(ms) / 1e3) / 1e9
        except WorkerError as e:
            out[system] = str(e)
        finally:
            w.close()
    vals = [v for k, v in out.items() if k in PEAK_SYSTEMS and isinstance(v, float)]
    out["gflop_s"] = max(vals) if vals else None
    if vals:
        log(f"machine peak: {out['gflop_s']:.1f} GFLOP/s (float32 {PEAK_N}^3 matmul, {settings.threads} threads, "
            "fastest call; " + ", ".join(f"{k} {v:.1f}" for k, v in out.items() if k in PEAK_SYSTEMS
                                         and isinstance(v, float)) + ")")
    return out


def bench_case(case: Case, systems: Sequence[str], settings: Settings, workdir: Path,
               log: Callable = _log_default) -> list[Entry]:
    """Time ``systems`` on ``case``, each in its own worker process, interleaved."""
    entries: dict[str, Entry] = {}
    workers: dict[str, Worker] = {}
    info: dict[str, dict] = {}
    options = {"tune_minutes": settings.tune_minutes, "tune_cache": settings.tune_cache,
               "opt_level": settings.opt_level}
    log(f"== {case.name}" + (f"  ({case.gflop:.2f} GFLOP)" if case.gflop else "") + (f"  [{case.note}]" if case.note else ""))
    try:
        for system in systems:
            if not applies(system, case):
                continue
            e = Entry(case.name, system, gflop=case.gflop)
            entries[system] = e
            why = _available(system)
            if why:
                e.note = why
                log(f"  {system:14} {why}")
                continue
            safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{case.name}-{system}")
            w = Worker(system, settings.threads, str(workdir / f"{safe}.log"))
            timeout = settings.prepare_timeout_s + (60 * settings.tune_minutes * 1.5 if system == "graphopt-tuned" else 0)
            try:
                r = w.request({"cmd": "prepare", "system": system, "case": case.to_dict(), "options": options},
                              timeout=timeout)
            except WorkerError as ex:
                e.note = f"prepare failed: {ex}"
                log(f"  {system:14} {e.note}")
                w.close()
                continue
            if not r["ok"]:
                e.note = f"failed: {r['error']}"
                log(f"  {system:14} {e.note}")
                w.close()
                continue
            e.prepare_s, e.tune_s = r["prepare_s"], r["tune_s"]
            e.max_abs_err, e.rel_err, e.base_mb = r["max_abs_err"], r["rel_err"], r["base_mb"]
            e.note = r.get("note") or ""
            info[system] = r
            workers[system] = w
            err = f"{e.max_abs_err:.1e}" if e.max_abs_err is not None else "-"
            log(f"  {system:14} prepared in {e.prepare_s:.1f} s, first call {r['first_ms']:.1f} ms, max abs err {err}")
        _time_rounds(case, workers, entries, info, settings, log)
        for system, w in workers.items():
            try:
                entries[system].peak_mb = w.request({"cmd": "stats"}, timeout=60)["peak_mb"]
            except WorkerError as ex:
                entries[system].note = _join(entries[system].note, str(ex))
    finally:
        for w in workers.values():
            w.close()
    return list(entries.values())


def _join(a: str, b: str) -> str:
    return f"{a}; {b}" if a and b else a or b


def _time_rounds(case, workers, entries, info, settings: Settings, log) -> None:
    samples: dict[str, list] = {s: [] for s in workers}
    spent: dict[str, float] = {s: 0.0 for s in workers}
    inner, cap, min_n = {}, {}, {}
    for s in workers:
        call_ms = max(info[s]["call_ms"], 1e-3)
        inner[s] = max(1, min(10000, math.ceil(settings.min_sample_ms / call_ms)))
        slow = s == "tvm-from_onnx"
        cap[s] = settings.slow_cap_s if slow else settings.cap_s
        min_n[s] = 1 if slow else 3
        if call_ms / 1e3 > cap[s]:
            # one call is over the budget already: report the prepare's checking call
            samples[s] = [info[s]["first_ms"]]
            entries[s].note = _join(entries[s].note, f"one call only (over the {cap[s]:.0f} s cap)")
    active = [s for s in workers if not samples[s]]

    def request(s, n):
        timeout = max(60.0, 10 * n * inner[s] * info[s]["call_ms"] / 1e3 + 30)
        try:
            r = workers[s].request({"cmd": "run", "n": n, "inner": inner[s]}, timeout=timeout)
        except WorkerError as ex:
            entries[s].note = _join(entries[s].note, f"run failed: {ex}")
            active.remove(s)
            return None
        if not r["ok"]:
            entries[s].note = _join(entries[s].note, f"run failed: {r['error']}")
            active.remove(s)
            return None
        return r["ms"]

    for s in list(active):  # warm-up, not timed (TVM: its checking call was the warm-up)
        if s != "tvm-from_onnx" and settings.warmup:
            request(s, settings.warmup)
    for rnd in range(settings.rounds):
        for s in list(active):
            if spent[s] >= cap[s] and len(samples[s]) >= min_n[s]:
                active.remove(s)
                entries[s].note = _join(entries[s].note, f"{len(samples[s])} rounds (time cap {cap[s]:.0f} s)")
                continue
            ms = request(s, 1)
            if ms is not None:
                samples[s].extend(ms)
                spent[s] += sum(ms) * inner[s] / 1e3
        if not active:
            break
    for s in workers:
        summarize(entries[s], samples[s])
        if inner[s] > 1:
            entries[s].note = _join(entries[s].note, f"{inner[s]} calls per sample")
        e = entries[s]
        if e.median_ms is not None:
            log(f"  {s:14} {e.median_ms:10.3f} ms  (p25-p75 {e.spread}, {len(samples[s])} samples)")


def resolve_systems(names: Optional[Sequence[str]], settings: Settings) -> list[str]:
    if not names:
        names = [s for s in SYSTEMS if s != "graphopt-tuned" or settings.tune_minutes > 0]
    out = []
    for n in names:
        c = canonical(n)
        if c not in out:
            out.append(c)
    return out


def run_suite(models: Sequence, systems: Optional[Sequence[str]] = None, settings: Optional[Settings] = None,
              log: Callable = _log_default, command: Optional[str] = None) -> tuple[list[Entry], dict]:
    """Benchmark ``models`` (suite names, .onnx paths, or prepared `Case`s) on ``systems``."""
    from .cases import suite_case

    settings = settings or Settings()
    systems = resolve_systems(systems, settings)
    workdir = Path(settings.workdir or tempfile.mkdtemp(prefix="graphopt-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    meta = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(), "threads": settings.threads,
            "command": command or "python " + " ".join(sys.argv), "systems": systems,
            "settings": {k: v for k, v in asdict(settings).items() if k not in ("workdir", "keep_workdir")},
            "versions": _versions(systems), "cases": {}}
    try:
        meta["peak"] = measure_peak(settings, workdir, log) if settings.peak else {"gflop_s": None}
        entries: list[Entry] = []
        for m in models:
            if isinstance(m, Case):
                case = m
            else:
                try:
                    case = suite_case(str(m), workdir / "cases", small=settings.small)
                except Exception as ex:  # a model that cannot be built must not stop the suite
                    log(f"== {m}: could not be prepared: {type(ex).__name__}: {ex}")
                    entries.append(Entry(str(m), "-", note=f"could not be prepared: {type(ex).__name__}: "
                                                           f"{str(ex).splitlines()[0][:200] if str(ex) else ''}"))
                    continue
            meta["cases"][case.name] = {"gflop": case.gflop, "note": case.note, "prepare_s": case.prepare_s,
                                        "inputs": dict(zip(case.input_names, case.input_shapes))}
            entries.extend(bench_case(case, systems, settings, workdir, log))
        if settings.peak:  # again at the end: the better of the two, should the machine have been busy once
            end = measure_peak(settings, workdir, log)
            meta["peak"]["at_start"] = meta["peak"]["gflop_s"]
            meta["peak"]["at_end"] = end["gflop_s"]
            meta["peak"]["gflop_s"] = max([v for v in (meta["peak"]["gflop_s"], end["gflop_s"]) if v] or [None])
        fill_ratios(entries, BASELINE, meta["peak"].get("gflop_s"))
        meta["wall_s"] = time.perf_counter() - t_start
        return entries, meta
    finally:
        if not settings.keep_workdir and not settings.workdir:
            shutil.rmtree(workdir, ignore_errors=True)


def _versions(systems) -> dict:
    from importlib import metadata

    out = {}
    for dist in ("graphopt", "onnxruntime", "apache-tvm", "torch", "openvino", "numpy", "transformers"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def report_markdown(entries: list[Entry], meta: dict) -> str:
    """The table with its header (date, machine, command, peak) and a legend."""
    peak = meta.get("peak", {}).get("gflop_s")
    lines = [f"Date: {meta['date']}. Machine: {meta['machine']}; {meta['threads']} threads for every system, "
             "float32.",
             "",
             f"Command: `{meta['command']}`",
             ""]
    if peak:
        lines += [f"Machine peak: {peak:.0f} GFLOP/s (float32 {meta['peak'].get('n', PEAK_N)}^3 matmul on the same "
                  "threads, the fastest of 30 calls in numpy and in torch, measured before and after the models).", ""]
    tuned = meta.get("settings", {}).get("tune_minutes") or 0
    lines += [f"graphopt-tuned: {'budget ' + format(tuned, 'g') + ' min per model' if tuned else 'not run (--tune-minutes 0)'}.",
              ""]
    lines.append(markdown(entries))
    lines += ["",
              "median and p25-p75: latency of one call over interleaved rounds (each system in its own process); "
              "vs onnxruntime: median ratio (lower is faster); GFLOP/s: the model's FLOPs (counted on graphopt's IR) "
              "per second, with the share of the machine's matmul peak; compile: the system's preparation "
              "(graphopt: compile, and tune within the budget; torch.compile: its first call), for torch models after a "
              "shared ONNX export; peak MB: the process's peak resident memory (libraries "
              "included); max abs err: against the oracle (onnxruntime, optimizations off)."]
    cases = []
    for k, v in meta.get("cases", {}).items():
        shapes = list(v.get("inputs", {}).values())
        desc = "inputs " + ", ".join("x".join(map(str, s)) or "scalar" for s in shapes[:3]) + \
            (f" and {len(shapes) - 3} more" if len(shapes) > 3 else "")
        if v.get("gflop"):
            desc += f", {v['gflop']:.3g} GFLOP"
        if v.get("note"):
            desc += f", {v['note']}"
        cases.append(f"{k} ({desc})")
    if cases:
        lines += ["", "Models: " + "; ".join(cases) + "."]
    return "\n".join(lines) + "\n"


def write_outputs(out_dir, entries: list[Entry], meta: dict, stem: str = "latest") -> dict:
    """``{stem}.md``, ``{stem}.json`` and ``{stem}.png`` (the ratio chart) under ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md = out / f"{stem}.md"
    tmp = md.with_suffix(".md.tmp")
    tmp.write_text(report_markdown(entries, meta))
    os.replace(tmp, md)
    js = out / f"{stem}.json"
    write_json(str(js), entries, meta)
    png = bar_chart(str(out / f"{stem}.png"), entries,
                    title=f"Latency relative to onnxruntime ({meta['date'][:10]}, {meta['threads']} threads)")
    return {"md": str(md), "json": str(js), "png": png}


def load_results(paths: Sequence) -> tuple[list[Entry], dict]:
    """Entries and meta from one or more JSON files written by `write_outputs` (merged in
    order; the first file's meta, with the others' cases and the higher peak)."""
    import json

    entries: list[Entry] = []
    meta: dict = {}
    known = set(Entry.__dataclass_fields__)
    for p in paths:
        data = json.loads(Path(p).read_text())
        m = data.get("meta", {})
        # Each run's ratios are to that run's own baseline (machine load differs between runs).
        run = [Entry(**{k: v for k, v in r.items() if k in known}) for r in data["results"]]
        for e in run:
            e.ratio = e.gflop_s = e.pct_peak = None
        fill_ratios(run, BASELINE, m.get("peak", {}).get("gflop_s"))
        entries += run
        if not meta:
            meta = m
        else:
            meta.setdefault("cases", {}).update(m.get("cases", {}))
            peaks = [x for x in (meta.get("peak", {}).get("gflop_s"), m.get("peak", {}).get("gflop_s")) if x]
            meta.setdefault("peak", {})["gflop_s"] = max(peaks) if peaks else None
            meta["command"] = meta.get("command", "") + " ; " + m.get("command", "")
    return entries, meta
