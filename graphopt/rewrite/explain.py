"""The explain log: per rule, where it applied and why it did not at candidate sites
(``graphopt opt --explain``; the fusion report, `graphopt.pipeline.report`, reads it
too)."""

from __future__ import annotations

from collections import defaultdict


class ExplainLog:
    """Per rule: where it applied, and why it did not at candidate sites."""

    def __init__(self):
        self.algebra: dict[str, str] = {}
        self.hits: dict[str, list[str]] = defaultdict(list)
        self.misses: dict[str, dict[str, str]] = defaultdict(dict)
        # the sites where the pattern fitted and a condition refused (the latest try's say)
        self.near: dict[str, set[str]] = defaultdict(set)

    def describe(self, rule: str, algebra: str) -> None:
        self.algebra.setdefault(rule, algebra)

    def applied(self, rule: str, site: str) -> None:
        self.hits[rule].append(site)
        self.misses[rule].pop(site, None)

    def failed(self, rule: str, site: str, reason: str, near: bool = False) -> None:
        self.misses[rule][site] = reason  # the latest reason at a site wins
        if near:
            self.near[rule].add(site)
        else:
            self.near[rule].discard(site)

    def rules(self, only: str | None = None) -> list[str]:
        """The rules that were tried somewhere, sorted; ``only``: just those whose name
        contains it (what ``--explain PATTERN`` and the fusion report narrow to)."""
        rules = sorted(set(self.algebra) | set(self.hits) | set(self.misses))
        return [r for r in rules if (not only or only in r) and (self.hits.get(r) or self.misses.get(r))]

    def open_misses(self, rule: str) -> dict[str, str]:
        """{site: reason} where ``rule`` did not apply and never applied later; the unusual
        reasons first ("is not constant" is what most sites say)."""
        hit_set = set(self.hits.get(rule, ()))
        misses = {s: why for s, why in self.misses.get(rule, {}).items() if s not in hit_set}
        return dict(sorted(misses.items(), key=lambda kv: "is not constant" in kv[1]))

    def format(self, max_sites: int = 20, only: str | None = None) -> str:
        """The report; ``only``: just the rules whose name contains it (a pass's name, a
        pattern's: "fuse-gelu", "gelu.tanh")."""
        lines = []
        for r in self.rules(only):
            head = f"rule {r}"
            if r in self.algebra:
                head += f": {self.algebra[r]}"
            lines.append(head)
            hits = self.hits.get(r, [])
            misses = self.open_misses(r)
            if hits:
                shown = ", ".join(hits[:max_sites]) + (f", ... ({len(hits) - max_sites} more)" if len(hits) > max_sites else "")
                lines.append(f"  applied {len(hits)} time(s): {shown}")
            else:
                lines.append("  applied 0 times")
            if misses:
                lines.append(f"  not applied at {len(misses)} candidate site(s):")
                for i, (s, why) in enumerate(misses.items()):
                    if i == max_sites:
                        lines.append(f"    ... ({len(misses) - max_sites} more)")
                        break
                    lines.append(f"    {s}: {why}")
        return "\n".join(lines) + ("\n" if lines else "")
