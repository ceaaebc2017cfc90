"""The campaign's report: counts per category and per family, then every failing case
with its id, family, the command or call, and the first lines of what happened."""

from __future__ import annotations

import json
from collections import Counter

from .outcome import CATEGORIES, PASSING


def table(results) -> str:
    fams = sorted({r.family for r in results})
    cats = [c for c in CATEGORIES if any(r.category == c for r in results)] or CATEGORIES[:2]
    per = Counter((r.family, r.category) for r in results)
    width = max([len(f) for f in fams] + [len("family"), len("total")])
    head = f"{'family':<{width}} " + " ".join(f"{c:>{max(len(c), 5)}}" for c in cats) + f" {'cases':>6}"
    lines = [head, "-" * len(head)]
    for f in fams + ["total"]:
        row = [sum(per[(g, c)] for g in fams) if f == "total" else per[(f, c)] for c in cats]
        lines.append(f"{f:<{width}} " + " ".join(f"{n:>{max(len(c), 5)}}" for n, c in zip(row, cats)) + f" {sum(row):>6}")
    return "\n".join(lines)


def failures(results, lines: int = 4) -> str:
    bad = [r for r in results if r.category not in PASSING]
    if not bad:
        return "no failing cases"
    out = [f"{len(bad)} failing case(s):"]
    for r in sorted(bad, key=lambda r: (r.category, r.id)):
        detail = "\n".join("      " + ln for ln in r.detail.strip().splitlines()[:lines])
        out.append(f"  [{r.category}] {r.id}  ({r.family}, expected {r.expect or '-'})\n    {r.what}\n{detail}")
    return "\n".join(out)


def summary(results) -> str:
    c = Counter(r.category for r in results)
    return ", ".join(f"{n} {cat}" for cat, n in sorted(c.items(), key=lambda kv: CATEGORIES.index(kv[0])))


def write_json(results, path) -> None:
    with open(path, "w") as f:
        json.dump([r.__dict__ for r in results], f, indent=1)
