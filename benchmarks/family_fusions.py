"""Which fusions -O2 finds in each transformers model family (graphopt.testing.families: tiny
configs, random weights), per attention implementation: the count of each fused op against
what the family should have, the decomposed ops left over (missed fusions, or ops of their
own: the BERT/ALBERT/ViT poolers end in a Tanh), and for every missed attention, norm,
rotary, GELU or SwiGLU site the explain log's reason and the IR around it (the Softmax
back to the q/k/v projections). fuse-rotary runs after -O2 when it is registered and not
in -O2 yet. With --use-cache the causal LMs are also traced with use_cache=True.

    .venv/bin/python -m benchmarks.family_fusions [--families llama,t5] [--attn sdpa] [--use-cache] [--no-ir]
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from collections import Counter

LEFT = ("Softmax", "Erf", "Tanh", "ReduceMean", "Sqrt", "Pow", "Reciprocal", "Sigmoid", "Neg")
# the ops a missed fusion leaves, and the rules whose reasons explain it
MISS_RULES = {"Softmax": "fuse-attention", "ReduceMean": ("fuse-layer-norm", "fuse-rms-norm"), "Neg": "fuse-rotary",
              "Erf": "fuse-gelu", "Tanh": "fuse-gelu", "Sigmoid": "fuse-swiglu"}
SHORT = {"graphopt.Attention": "Attn", "LayerNormalization": "LN", "graphopt.RMSNorm": "RMS", "Gelu": "Gelu",
         "graphopt.SwiGLU": "SwiGLU", "graphopt.RotaryEmbedding": "Rotary"}


def rotary_after_o2() -> bool:
    """fuse-rotary is registered but not in -O2 (then it runs after it)."""
    from graphopt.pipeline.base import get_pass
    from graphopt.pipeline.pipelines import O2_PASSES

    try:
        get_pass("fuse-rotary")
    except Exception:  # not written yet
        return False
    return "fuse-rotary" not in O2_PASSES


def optimize_o2(graph):
    """-O2 (+ fuse-rotary, dce) with the explain log on; the graph and the logs."""
    from graphopt.pipeline.api import run_pipeline

    logs = [run_pipeline(graph, "O2", explain=io.StringIO()).ctx.explain]
    if rotary_after_o2():
        logs.append(run_pipeline(graph, "fuse-rotary,dce", explain=io.StringIO()).ctx.explain)
    return graph, logs


def _downstream(node, depth: int):
    seen, frontier = [], [node]
    for _ in range(depth):
        nxt = []
        for n in frontier:
            for o in n.outputs:
                for c in (o.consumers() if o is not None else ()):
                    if c not in seen:
                        seen.append(c)
                        nxt.append(c)
        frontier = nxt
    return seen


def _upstream(node, depth: int):
    """The producers of ``node`` up to ``depth`` steps back, stopping at a projection (a
    MatMul/Gemm with a constant weight) or a graph input."""
    seen, frontier = [node], [node]
    for _ in range(depth):
        nxt = []
        for n in frontier:
            if n is not node and n.op_type in ("MatMul", "Gemm") and any(i is not None and i.is_constant for i in n.inputs):
                continue
            for i in n.inputs:
                p = i.producer if i is not None else None
                if p is not None and p not in seen:
                    seen.append(p)
                    nxt.append(p)
        frontier = nxt
    return seen


def miss_reasons(graph, logs, op: str) -> list[tuple[str, list[str]]]:
    """For each leftover ``op`` node: (its name, ["rule: site: reason", ...]) from the explain
    logs at the sites downstream of it (where the rules anchor), near misses (the pattern
    fitted, a condition refused) first."""
    prefixes = MISS_RULES[op] if isinstance(MISS_RULES[op], tuple) else (MISS_RULES[op],)
    # attention anchors at the MatMul after the Softmax (through Where(IsNaN)); norms, GELU
    # and rotary a few ops after their first one
    depth = 3 if op == "Softmax" else 6
    out = []
    for n in graph.nodes:
        if n.op_type != op:
            continue
        sites = [f"{d.name} ({d.qualified_op})" for d in [n] + _downstream(n, depth)]
        near, far = [], []
        for log in logs:
            for rule in [r for p in prefixes for r in log.rules(p)]:
                misses = log.open_misses(rule)
                for s in sites:
                    if s in misses:
                        (near if s in log.near.get(rule, ()) else far).append(f"{rule} at {s}: {misses[s]}")
        out.append((n.name, near + far[: max(0, 2 - len(near))]))
    return out


def ir_around(graph, node_name: str, depth: int = 10) -> str:
    """The printed IR from the producers of ``node_name`` (back to the projections) to its
    consumers' consumers, in graph order."""
    from graphopt.ir.printer import format_node

    node = next(n for n in graph.nodes if n.name == node_name)
    keep = set(_upstream(node, depth)) | set(_downstream(node, 2))
    return "\n".join("    " + format_node(n) for n in graph.nodes if n in keep)


def survey_case(name: str, attn: str, use_cache: bool = False) -> dict:
    """Build, trace and optimize one family; its counts, leftovers and misses (or the
    trace error)."""
    import graphopt
    from graphopt.testing.families import build, fused_counts

    t0 = time.perf_counter()
    b = build(name, attn, use_cache=use_cache)
    row = {"family": name, "attn": attn + ("+cache" if use_cache else ""), "expected": b.expected.counts()}
    try:
        g = graphopt.trace(b.module, b.args)
    except Exception as e:  # a TraceError names the stage and the cause
        row["error"] = f"{type(e).__name__}: {e}"
        return row
    g, logs = optimize_o2(g)
    c = Counter(n.qualified_op for n in g.nodes)
    row["counts"] = fused_counts(g)
    row["left"] = {op: c[op] for op in LEFT if c[op]}
    row["misses"] = {op: miss_reasons(g, logs, op) for op in row["left"] if op in MISS_RULES}
    row["graph"] = g
    row["seconds"] = time.perf_counter() - t0
    return row


def format_table(rows) -> str:
    ops = list(SHORT)
    head = f"{'family':<12}{'attn':<12}" + "".join(f"{SHORT[o]:>8}" for o in ops) + "   left decomposed"
    lines = [head, "-" * len(head)]
    for r in rows:
        pre = f"{r['family']:<12}{r['attn']:<12}"
        if "error" in r:
            lines.append(pre + "trace failed: " + r["error"].splitlines()[0][:140])
            continue
        cells = []
        for o in ops:
            got, want = r["counts"][o], r["expected"][o]
            cells.append(f"{got if got == want else f'{got}/{want}!':>8}")
        left = ", ".join(f"{k} {v}" for k, v in r["left"].items()) or "none"
        lines.append(pre + "".join(cells) + f"   {left}")
    lines.append("(a count n/m! is n found where m were expected)")
    return "\n".join(lines)


def format_misses(rows, ir: bool = True) -> str:
    lines = []
    for r in rows:
        if "error" in r:
            lines += [f"== {r['family']} {r['attn']}: trace failed", "    " + r["error"].replace("\n", "\n    ")]
            continue
        short = {SHORT[o] for o in SHORT if r["counts"][o] < r["expected"][o]}
        for op, sites in r["misses"].items():
            for node, reasons in sites:
                if op == "Tanh" and not reasons and "Gelu" not in short:
                    continue  # a pooler's Tanh: no GELU around it, nothing missed
                lines.append(f"== {r['family']} {r['attn']}: {op} {node} left")
                lines += [f"    {why}" for why in reasons] or ["    (no rule tried a site downstream of it)"]
                if ir:
                    lines.append(ir_around(r["graph"], node))
    return "\n".join(lines)


def main(argv=None) -> int:
    from graphopt.testing.families import ATTN_IMPLEMENTATIONS, FAMILIES

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--attn", default=",".join(ATTN_IMPLEMENTATIONS))
    ap.add_argument("--use-cache", action="store_true", help="also trace the causal LMs with use_cache=True")
    ap.add_argument("--no-ir", action="store_true", help="reasons only, without the IR around each missed site")
    a = ap.parse_args(argv)

    rows = []
    t0 = time.perf_counter()
    for name in a.families.split(","):
        for attn in a.attn.split(","):
            rows.append(survey_case(name, attn))
            print(f"  {name} {attn}: {rows[-1].get('seconds', 0):.1f} s", file=sys.stderr, flush=True)
        if a.use_cache and FAMILIES[name].causal_lm:
            rows.append(survey_case(name, a.attn.split(",")[-1], use_cache=True))
    print(f"-O2{' + fuse-rotary,dce' if rotary_after_o2() else ''}, {len(rows)} cases in {time.perf_counter() - t0:.0f} s")
    print(format_table(rows))
    misses = format_misses(rows, ir=not a.no_ir)
    print("\nmissed sites" + (":\n" + misses if misses else ": none"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
