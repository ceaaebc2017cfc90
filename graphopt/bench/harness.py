"""Shared timing and reporting for the benchmarks: interleaved rounds, medians and spread,
markdown, JSON and a bar chart of the ratios. Speed is reported, never asserted."""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional

BASELINE = "onnxruntime"


@dataclass
class Entry:
    model: str
    system: str
    median_ms: Optional[float] = None
    p25_ms: Optional[float] = None
    p75_ms: Optional[float] = None
    prepare_s: Optional[float] = None      # trace/export + compile (+ tune) time
    max_abs_err: Optional[float] = None    # against the model's oracle
    note: str = ""
    samples: list = field(default_factory=list)
    # filled in by the suite (graphopt.bench.runner); optional for other callers
    tune_s: Optional[float] = None         # the tuning part of prepare_s
    rel_err: Optional[float] = None        # max abs err / max abs oracle value
    peak_mb: Optional[float] = None        # peak resident memory of the system's own process
    base_mb: Optional[float] = None        # ... after importing its libraries, before the model
    gflop: Optional[float] = None          # FLOPs of one run of the model, in GFLOP
    gflop_s: Optional[float] = None        # achieved: gflop / median
    pct_peak: Optional[float] = None       # gflop_s against the machine's measured matmul peak
    ratio: Optional[float] = None          # median / baseline's median on the same model

    @property
    def spread(self) -> str:
        if self.p25_ms is None:
            return "-"
        return f"{_ms(self.p25_ms)}-{_ms(self.p75_ms)}"


def _ms(x: float) -> str:
    return f"{x:.1f}" if x >= 10 else f"{x:.2f}" if x >= 0.1 else f"{x:.3f}"


def time_interleaved(fns: dict[str, Callable[[], object]], rounds: int, warmup: int = 2,
                     budget_s: Optional[float] = None) -> dict[str, list[float]]:
    """Call every function once per round, in turn, so that machine noise hits all systems
    alike; returns per-system samples in milliseconds."""
    for _ in range(warmup):
        for f in fns.values():
            f()
    samples: dict[str, list[float]] = {k: [] for k in fns}
    t_start = time.perf_counter()
    for _ in range(rounds):
        for k, f in fns.items():
            t0 = time.perf_counter()
            f()
            samples[k].append(1e3 * (time.perf_counter() - t0))
        if budget_s is not None and time.perf_counter() - t_start > budget_s and len(samples[k]) >= 5:
            break
    return samples


def summarize(entry: Entry, samples: list[float]) -> Entry:
    s = sorted(samples)
    if not s:
        return entry
    entry.samples = [round(x, 4) for x in s]
    entry.median_ms = statistics.median(s)
    q = statistics.quantiles(s, n=4) if len(s) >= 4 else [s[0], statistics.median(s), s[-1]]
    entry.p25_ms, entry.p75_ms = q[0], q[2]
    return entry


def fill_ratios(entries: list[Entry], baseline: str = BASELINE, peak_gflop_s: Optional[float] = None) -> None:
    """Set ratio (to the baseline on the same model), achieved GFLOP/s and share of peak;
    a ratio already set (by a run that had its own baseline) is kept."""
    base = {e.model: e.median_ms for e in entries if e.system == baseline and e.median_ms}
    for e in entries:
        if e.ratio is None and e.median_ms and e.model in base:
            e.ratio = e.median_ms / base[e.model]
        if e.median_ms and e.gflop:
            e.gflop_s = e.gflop / (e.median_ms / 1e3)
            if peak_gflop_s:
                e.pct_peak = 100.0 * e.gflop_s / peak_gflop_s


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        cores = os.cpu_count()
    return f"{cpu}, {cores} cores, Python {platform.python_version()}"


def best_peers(entries: list[Entry]) -> dict[str, Entry]:
    """Per model, the fastest system that is not graphopt's own (the bar's reference)."""
    best: dict[str, Entry] = {}
    for e in entries:
        if e.median_ms and not e.system.startswith("graphopt"):
            if e.model not in best or e.median_ms < best[e.model].median_ms:
                best[e.model] = e
    return best


def markdown(entries: list[Entry], baseline: str = BASELINE) -> str:
    """One row per (model, system). Ratios are computed here when the caller has not; a
    graphopt row also gives its ratio to the model's best peer (and names it)."""
    if any(e.ratio is None for e in entries):
        fill_ratios(entries, baseline)
    best = best_peers(entries)
    lines = ["| model | system | median ms | p25-p75 ms | vs " + baseline + " | vs best peer | GFLOP/s (% peak) "
             "| compile s | peak MB | max abs err | note |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for e in entries:
        ratio = f"{e.ratio:.2f}x" if e.ratio is not None else "-"
        peer = best.get(e.model)
        vs_best = (f"{e.median_ms / peer.median_ms:.2f}x ({peer.system})"
                   if peer is not None and e.median_ms and e.system.startswith("graphopt") else "-")
        med = _ms(e.median_ms) if e.median_ms is not None else "-"
        prep = f"{e.prepare_s:.1f}" if e.prepare_s is not None else "-"
        if e.tune_s:
            prep += f" (tune {e.tune_s:.0f})"
        err = f"{e.max_abs_err:.1e}" if e.max_abs_err is not None else "-"
        if e.gflop_s is not None:
            gf = f"{e.gflop_s:.1f}" + (f" ({e.pct_peak:.0f}%)" if e.pct_peak is not None else "")
        else:
            gf = "-"
        mem = f"{e.peak_mb:.0f}" if e.peak_mb is not None else "-"
        note = e.note.replace("|", "/").replace("\n", " ")
        lines.append(f"| {e.model} | {e.system} | {med} | {e.spread} | {ratio} | {vs_best} | {gf} | {prep} | {mem} | {err} "
                     f"| {note} |")
    return "\n".join(lines)


def write_json(path: str, entries: list[Entry], meta: dict) -> None:
    with open(path + ".tmp", "w") as f:
        json.dump({"meta": meta, "results": [asdict(e) for e in entries]}, f, indent=1,
                  default=lambda o: None if isinstance(o, float) and not math.isfinite(o) else str(o))
    os.replace(path + ".tmp", path)


def bar_chart(path: str, entries: list[Entry], baseline: str = BASELINE, title: str = "") -> Optional[str]:
    """A grouped bar chart of each system's latency ratio to the baseline, per model, on a
    log scale (lower is faster; the baseline is the line at 1). Returns the path, or None
    when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    import textwrap

    models = list(dict.fromkeys(e.model for e in entries))
    systems = [s for s in dict.fromkeys(e.system for e in entries) if s not in (baseline, "-")]
    ratio = {(e.model, e.system): e.ratio for e in entries if e.ratio}
    present = {m: [s for s in systems if any(e.model == m and e.system == s for e in entries)] for m in models}
    n = max([len(v) for v in present.values()] + [1])
    width = 0.84 / n
    fig, ax = plt.subplots(figsize=(min(18.0, 2.0 + len(models) * (0.5 + 0.28 * n)), 5.2))
    cmap = plt.get_cmap("tab10")
    color = {s: cmap(j % 10) for j, s in enumerate(systems)}
    labelled = set()
    for i, m in enumerate(models):
        k = len(present[m])
        for j, s in enumerate(present[m]):
            x = i + (j - (k - 1) / 2) * width
            v = ratio.get((m, s))
            if not v:  # failed or skipped: say so where its bar would be
                ax.annotate("n/a", (x, 1.0), ha="center", va="bottom", fontsize=6, color="gray", rotation=90,
                            xytext=(0, 2), textcoords="offset points")
                continue
            # bars grow from the baseline's line at 1: up when slower, down when faster
            ax.bar([x], [v - 1.0], width * 0.92, bottom=1.0, color=color[s],
                   label=s if s not in labelled else None)
            labelled.add(s)
            ax.annotate(f"{v:.2g}" if v < 10 else f"{v:.0f}", (x, v), ha="center",
                        va="bottom" if v >= 1 else "top", fontsize=7,
                        xytext=(0, 2 if v >= 1 else -2), textcoords="offset points")
    for s in systems:  # every system in the legend, in a stable order
        if s not in labelled:
            ax.bar([0], [0], 0, bottom=1.0, color=color[s], label=s)
    ax.set_yscale("log")
    ax.axhline(1.0, color="black", linewidth=1, label=f"{baseline} (= 1)")
    ax.set_xticks(range(len(models)))
    ax.set_xticklabels([textwrap.fill(m, 18) for m in models], fontsize=8)
    ax.set_ylabel(f"latency / {baseline} latency (log; lower is faster)")
    ax.set_title(title or f"Latency relative to {baseline} (median)", pad=24)
    ax.grid(axis="y", which="both", alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    key = [baseline + " (= 1)"] + systems
    pairs = sorted(zip(handles, labels), key=lambda hl: key.index(hl[1]) if hl[1] in key else len(key))
    ax.legend([h for h, _ in pairs], [lab for _, lab in pairs], fontsize=8, ncol=min(7, len(pairs)),
              loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    lo = min([v for v in ratio.values()] + [1.0])
    hi = max([v for v in ratio.values()] + [1.0])
    ax.set_ylim(lo / 2, hi * 3)
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
    return path
