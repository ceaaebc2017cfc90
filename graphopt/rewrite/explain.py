"""The explain log: per rule, where it applied and why it did not at candidate sites
(``graphopt opt --explain``)."""

from __future__ import annotations

from collections import defaultdict


class ExplainLog:
    """Per rule: where it applied, and why it did not at candidate sites."""

    def __init__(self):
        self.algebra: dict[str, str] = {}
        self.hits: dict[str, list[str]] = defaultdict(list)
        self.misses: dict[str, dict[str, str]] = defaultdict(dict)

    def describe(self, rule: str, algebra: str) -> None:
        self.algebra.setdefault(rule, algebra)

    def applied(self, rule: str, site: str) -> None:
        self.hits[rule].append(site)
        self.misses[rule].pop(site, None)

    def failed(self, rule: str, site: str, reason: str) -> None:
        self.misses[rule][site] = reason  # the latest reason at a site wins

    def format(self, max_sites: int = 20, only: str | None = None) -> str:
        """The report; ``only``: just the rules whose name contains it (a pass's name, a
        pattern's: "fuse-gelu", "gelu.tanh")."""
        rules = sorted(set(self.algebra) | set(self.hits) | set(self.misses))
        if only:
            rules = [r for r in rules if only in r]
        lines = []
        for r in rules:
            if not self.hits.get(r) and not self.misses.get(r):
                continue
            head = f"rule {r}"
            if r in self.algebra:
                head += f": {self.algebra[r]}"
            lines.append(head)
            hits = self.hits.get(r, [])
            hit_set = set(hits)
            misses = {s: why for s, why in self.misses.get(r, {}).items() if s not in hit_set}
            # the unusual reasons first: "not constant" is what most sites say
            misses = dict(sorted(misses.items(), key=lambda kv: "is not constant" in kv[1]))
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
