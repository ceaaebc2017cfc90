"""The fusion report: what fused, from which source nodes, and why the rest did not, as
a JSON-able dict (``graphopt opt --report``, ``graphopt compile --report``).

    run = run_pipeline(g, "O2", explain=io.StringIO())   # the explain log on, not printed
    report = fusion_report(run.graph, run.ctx)

It reads what a pipeline run records: the applications (every rewrite, with its pass, its
rule, the nodes it matched and the nodes it created), the explain log (per rule, the
candidate sites where it did not apply and the matcher's reason) and the final graph
(its fused nodes and their provenance). Sections:

- ``patterns``: per rule, how many times it applied (per pass too) and at how many
  candidate sites it did not; ``passes``: per pass, applications by rule;
- ``fused_ops``: the fused nodes of the final graph counted by op; ``fused_nodes``: each
  one's name, op, the rules that built it and the source nodes (of the graph the pipeline
  started from) it came from, followed through rewrites of rewrites;
- ``misses``: every near miss of a fusion rule (a rule set named ``fuse-*``): a site where
  the pattern's ops fitted and containment or a condition refused it, with the reason, and
  the fused node the site ended up in anyway (another rule fused it) if any. The other
  candidate sites (a node that merely has the root's op: every Mul for a gelu rule) and
  the misses of cleanup rules (simplify, fold-constants, ...) dominate and say little:
  only their counts are kept (``misses_not_listed``; ``--explain`` prints them all);
- ``kernels`` (a compile only, `kernel_entries`): per kernel of the built library, the
  graph node it came from where graphopt decided the kernel, the tuning record key if tuned;
  what is not known is said so, not guessed.

A fused node is one a fusion rule created, a named fused op (an op with a reference
decomposition: LayerNormalization, Gelu, graphopt.RMSNorm, ...) or a graphopt.FusedGroup.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Callable, Iterable, Optional, Sequence

from ..ir import Graph, Node, is_fused_group
from ..ops import has_decomposition
from .base import Application, PassContext

FORMAT = "graphopt.fusion-report/1"
FUSION_PREFIX = "fuse-"  # fusion passes name their rule sets after themselves


def is_fusion_rule(rule: str) -> bool:
    return rule.startswith(FUSION_PREFIX)


def _node_name(site: str) -> tuple[str, Optional[str]]:
    """("name", "Op") of an applications/explain site "name (Op)"; ("%c", None) for a value."""
    if site.endswith(")") and " (" in site:
        name, op = site[:-1].rsplit(" (", 1)
        return name, op
    return site, None


def _dedupe(xs: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(xs))


class _Origins:
    """Created node name -> (source nodes of the input graph, rules), in application order,
    so that a node built from nodes earlier rewrites built resolves to the original ones
    (and a name reused after an erase resolves to its latest node)."""

    def __init__(self, applications: Sequence[Application]):
        self.sources: dict[str, list[str]] = {}
        self.rules: dict[str, list[str]] = {}
        for a in applications:
            if not a.created:
                continue
            src, chain = [], []
            for site in a.nodes:
                nm, _ = _node_name(site)
                src.extend(self.sources.get(nm, [nm]))
                chain.extend(self.rules.get(nm, []))
            chain.append(a.rule)
            for c in a.created:
                self.sources[c], self.rules[c] = _dedupe(src), _dedupe(chain)

    def of(self, name: str) -> tuple[list[str], list[str]]:
        return self.sources.get(name, [name]), self.rules.get(name, [])

    def origin(self, n: Node) -> tuple[list[str], list[str], str]:
        """(sources, rules, origin) of a node of the final graph: built by this run's
        rewrites; else what its provenance says (an earlier run built it: its matched
        nodes); else it was in the input."""
        if n.name in self.sources:
            return self.sources[n.name], self.rules[n.name], "rewrite"
        if n.provenance is not None:
            return list(n.provenance.sources), [n.provenance.rule], "provenance"
        return [n.name], [], "input"


def is_fused_node(n: Node) -> bool:
    return (is_fused_group(n) or has_decomposition(n)
            or (n.provenance is not None and is_fusion_rule(n.provenance.rule)))


def _provenance(n: Node, origins: _Origins) -> tuple[list[str], list[str], str]:
    """`_Origins.origin`, and for a fused group its body's nodes' (named "<group>/<node>")."""
    src, chain, origin = origins.origin(n)
    if is_fused_group(n):
        prefix = n.name + "/"
        src = []
        for inner in n.subgraphs()[0].walk():
            nm = inner.name[len(prefix):] if inner.name.startswith(prefix) else inner.name
            s, r = origins.of(nm)
            src.extend(s)
            chain = chain + r
        src, chain = _dedupe(src), _dedupe(chain)
    return src, chain, origin


def _fused_entry(n: Node, origins: _Origins) -> dict:
    src, chain, origin = _provenance(n, origins)
    return {"name": n.name, "op": n.qualified_op,
            "rule": n.provenance.rule if n.provenance is not None else None,
            "rules": chain,
            "matched": list(n.provenance.sources) if n.provenance is not None else [],
            "sources": src,
            "origin": origin}


def fusion_report(graph: Graph, ctx: PassContext, *, only: Optional[str] = None) -> dict:
    """The report (see the module's docstring) of the pipeline run whose context is ``ctx``
    and whose result is ``graph``; ``only``: just the rules whose name contains it, and the
    fused nodes one of them built (what ``--explain PATTERN`` narrows to)."""
    log = ctx.explain
    apps = [a for a in ctx.applications if not only or only in a.rule]
    origins = _Origins(ctx.applications)

    per_rule: dict[str, Counter] = defaultdict(Counter)
    per_pass: dict[str, Counter] = defaultdict(Counter)
    for a in apps:
        per_rule[a.rule][a.pass_name] += 1
        per_pass[a.pass_name][a.rule] += 1

    fused = [_fused_entry(n, origins) for n in graph.walk() if is_fused_node(n)]
    if only:
        fused = [f for f in fused if any(only in r for r in f["rules"])]
    fused_into = {s: f["name"] for f in fused for s in f["sources"]}
    fused_into.update({f["name"]: f["name"] for f in fused})

    def into(name: str) -> Optional[str]:
        """The fused node a site's node ended up in (a site may itself be a rewrite's node)."""
        return next((fused_into[s] for s in [name, *origins.of(name)[0]] if s in fused_into), None)

    rules = set(per_rule) | set(log.rules(only) if log is not None else ())
    patterns, misses, not_listed = [], [], {}
    for r in sorted(rules):
        open_misses = log.open_misses(r) if log is not None else {}
        near_sites = log.near.get(r, set()) if log is not None and is_fusion_rule(r) else set()
        near = {s: why for s, why in open_misses.items() if s in near_sites}
        patterns.append({"rule": r, "algebra": log.algebra.get(r) if log is not None else None,
                         "applied": sum(per_rule[r].values()), "passes": dict(per_rule[r]),
                         "not_applied": len(open_misses) if log is not None else None,
                         "near_misses": len(near) if log is not None else None})
        if len(open_misses) > len(near):
            not_listed[r] = len(open_misses) - len(near)
        for site, why in near.items():
            nm, op = _node_name(site)
            misses.append({"rule": r, "site": site, "node": nm, "op": op, "reason": why,
                           "fused_into": into(nm)})

    report = {
        "format": FORMAT,
        "graph": graph.name,
        "only": only,
        "applied": len(apps),
        "patterns": patterns,
        "passes": {p: {"applied": sum(c.values()), "rules": dict(c)} for p, c in per_pass.items()},
        "fused_ops": dict(sorted(Counter(f["op"] for f in fused).items())),
        "fused_nodes": fused,
        "misses": misses if log is not None else None,
        "misses_not_listed": not_listed,
    }
    if log is None:
        report["unknown"] = {"misses": "the pipeline ran without the explain log (explain=...), which records them"}
    return report


def add_kernels(report: dict, graph: Graph, ctx: PassContext, kernel_names: Sequence[str], tuning: Optional[dict],
                own_kernel: Callable[[Node], Optional[str]], calls: Sequence[dict] = ()) -> None:
    """A compile's sections: ``kernels`` (`kernel_entries`), and each fused node's
    ``kernel`` (the kernel that computes it, where known)."""
    report["kernels"] = kernel_entries(graph, ctx, kernel_names, tuning, own_kernel, calls)
    where: dict[str, str] = {}
    for k in report["kernels"]:
        for nm in k["nodes"] or ():
            where.setdefault(nm, k["name"])
    for f in report["fused_nodes"]:
        f["kernel"] = where.get(f["name"])
    tvm = [k for k in report["kernels"] if k["decided_by"] == "tvm-fuseops"]
    notes = []
    if any(k["nodes"] is None for k in tvm):
        notes.append("a kernel with nodes null is one TVM's FuseOps grouped from the lowered ops, and the "
                     "build recorded no map from its calls to graphopt's values")
    if any(k["nodes"] is not None for k in tvm):
        notes.append("a kernel TVM's FuseOps grouped lists the nodes the build's kernel map named: those whose "
                     "values it outputs, and those it traced inside (a node fused in that it did not trace is "
                     "not listed)")
    if notes:
        report["unknown"] = dict(report.get("unknown", {}), kernel_nodes="; ".join(notes))


def kernel_entries(graph: Graph, ctx: PassContext, kernel_names: Sequence[str], tuning: Optional[dict],
                   own_kernel: Callable[[Node], Optional[str]], calls: Sequence[dict] = ()) -> list[dict]:
    """Per kernel of a built library (``kernel_names``, the PrimFuncs after TVM's fusion):
    the graph nodes it computes and the input graph's nodes they came from, and the tuning
    task's key where it is a tuned task's named kernel.

    ``own_kernel(node)``: the kernel a node compiles to on its own (a fused group, a named
    fused op lowered from its decomposition; None for the others): that kernel is exactly
    that node (``node``). ``calls``: the build's kernel map, if it recorded one (per call of
    main, ``{"kernel", "outputs": [[{"node", ...}]], "inside": [{"node", ...}]}``): the nodes
    whose values a TVM-grouped kernel outputs, and those it traced inside; without it those
    kernels' ``nodes`` are null (unknown)."""
    origins = _Origins(ctx.applications)
    by_name = {n.name: n for n in graph.walk()}
    own = {}
    for n in by_name.values():
        k = own_kernel(n)
        if k is not None:
            own[k] = n
    traced: dict[str, list[str]] = defaultdict(list)
    for c in calls:
        for w in [w for group in c.get("outputs", ()) for w in group] + list(c.get("inside", ())):
            if w.get("node") in by_name:
                traced[c["kernel"]].append(w["node"])
    tasks = {t.get("name"): t for t in (tuning or {}).get("tasks", [])}
    out = []
    for k in kernel_names:
        n = own.get(k)
        nodes = [n.name] if n is not None else (_dedupe(traced[k]) if k in traced else None)
        e: dict = {"name": k, "node": n.name if n is not None else None, "op": n.qualified_op if n is not None else None,
                   "decided_by": "graphopt" if n is not None else "tvm-fuseops", "nodes": nodes,
                   "sources": None if nodes is None else _dedupe(
                       s for nm in nodes for s in _provenance(by_name[nm], origins)[0])}
        t = tasks.get(k)
        e["tuning_key"] = t.get("key") if t else None
        e["tuned_used"] = bool(t.get("used")) if t else None
        if tuning and not t:
            e["tuning_unknown"] = "not a tuning task's named kernel (an identical kernel's task, or not tuned)"
        out.append(e)
    return out


def summary(report: dict, max_lines: int = 12) -> str:
    """A few lines for the terminal: applications per fusion pattern, fused ops, how many
    candidate sites did not fuse (and a pointer to --explain for the reasons)."""
    lines = []
    fusion = [p for p in report["patterns"] if is_fusion_rule(p["rule"]) and (p["applied"] or p["near_misses"])]
    for p in fusion[:max_lines]:
        lines.append(f"  {p['rule']}: applied {p['applied']}"
                     + (f", near misses {p['near_misses']}" if p["near_misses"] else ""))
    if len(fusion) > max_lines:
        lines.append(f"  ... ({len(fusion) - max_lines} more patterns)")
    ops = ", ".join(f"{op} x{n}" for op, n in report["fused_ops"].items()) or "none"
    head = f"fusion report: {len(report['fused_nodes'])} fused node(s) ({ops})"
    misses = report["misses"]
    if misses is not None:
        stray = sum(1 for m in misses if m["fused_into"] is None)
        tail = f"{len(misses)} near miss(es), {stray} of them at sites no other rule fused"
        if misses:
            tail += "; their reasons are in the report, every site's with --explain" + (
                f" {report['only']}" if report["only"] else "")
        lines.append("  " + tail)
    if report.get("kernels") is not None:
        own = sum(1 for k in report["kernels"] if k["node"] is not None)
        unknown = sum(1 for k in report["kernels"] if k["nodes"] is None)
        lines.append(f"  {len(report['kernels'])} kernel(s), {own} of them graphopt's fused nodes"
                     + (f", {unknown} whose graph nodes are not known" if unknown else ""))
    return head + "\n" + "\n".join(lines)
