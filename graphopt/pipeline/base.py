"""Passes, the pass registry and the context a pass runs in.

A pass is a dataclass subclass of `Pass` with a kebab-case ``name`` (its CLI name), a
one-line ``summary``, and options as typed dataclass fields (int, float, bool, str)::

    @register_pass
    @dataclass
    class FoldConstants(Pass):
        name = "fold-constants"
        summary = "evaluate nodes whose inputs are all constant"
        max_elements: int = 1 << 24

        def run(self, graph, ctx) -> bool: ...

``run`` returns whether it changed the graph; the pass manager cross-checks that with the
graph's journal. Every individual rewrite a pass applies first asks ``ctx.allow(...)``:
that counts applications across passes (``--bisect-limit``) and records what they were.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Callable, ClassVar, Iterable, Optional, Sequence

from ..ir import Graph, Node
from .errors import PassOptionError, UnknownPassError

_KEBAB = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")


@dataclass(frozen=True)
class Application:
    """One rewrite a pass applied (or, past the bisect limit, would have applied)."""

    index: int              # 1-based, counted across every pass of a pipeline run
    pass_name: str
    invocation: int         # which pass invocation of the pipeline (1-based)
    rule: str
    nodes: tuple[str, ...]  # the nodes it matched, as "name (Op)"
    detail: str = ""        # what it did, and the matched nodes as text
    created: tuple[str, ...] = ()  # the names of the nodes it created (provenance across rewrites)

    def __str__(self) -> str:
        s = f"application #{self.index}: rule {self.rule} (pass {self.pass_name}, invocation {self.invocation})"
        if self.nodes:
            s += " at " + ", ".join(self.nodes)
        if self.detail:
            s += "\n    " + self.detail.replace("\n", "\n    ")
        return s


class PassContext:
    """What passes share during one pipeline run: the application counter (bisect limit),
    the application log, and the explain log (when ``--explain`` is on)."""

    def __init__(self, *, bisect_limit: Optional[int] = None, explain: bool = False, record: bool = True):
        self.bisect_limit = bisect_limit
        self.count = 0
        self.record = record
        self.applications: list[Application] = []
        self.refused = 0
        from ..rewrite import ExplainLog

        self.explain: Optional[ExplainLog] = ExplainLog() if explain else None
        self.pass_name = ""
        self.invocation = 0

    @property
    def limit_reached(self) -> bool:
        return self.bisect_limit is not None and self.count >= self.bisect_limit

    def allow(self, rule: str, nodes: Sequence[Node] = (), detail: str | Callable[[], str] = "",
              created: Sequence[Node] = ()) -> bool:
        """Ask to apply one rewrite. False past the bisect limit (the pass must then leave
        the site alone); otherwise counts and records it."""
        if self.limit_reached:
            self.refused += 1
            return False
        self.count += 1
        if self.record:
            d = detail() if callable(detail) else detail
            self.applications.append(Application(self.count, self.pass_name, self.invocation, rule,
                                                 tuple(f"{n.name} ({n.qualified_op})" for n in nodes), d,
                                                 tuple(n.name for n in created)))
        return True

    def explain_applied(self, rule: str, site: str) -> None:
        if self.explain is not None:
            self.explain.applied(rule, site)

    def explain_failed(self, rule: str, site: str, reason: str | Callable[[], str], near: bool = False) -> None:
        """``near``: the rule's pattern fitted at the site and a condition refused it."""
        if self.explain is not None:
            self.explain.failed(rule, site, reason() if callable(reason) else reason, near)


class Pass:
    """Base class of passes (subclasses are dataclasses; their fields are the options)."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""

    def run(self, graph: Graph, ctx: PassContext) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    # options --------------------------------------------------------------------
    @classmethod
    def option_fields(cls) -> list[dataclasses.Field]:
        return list(dataclasses.fields(cls)) if dataclasses.is_dataclass(cls) else []

    @classmethod
    def option_help(cls) -> str:
        parts = []
        for f in cls.option_fields():
            t = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
            default = f.default if f.default is not dataclasses.MISSING else "?"
            parts.append(f"{_kebab(f.name)}: {t} = {_fmt(default)}")
        return ", ".join(parts)

    @classmethod
    def with_options(cls, options: dict[str, str | object]) -> "Pass":
        """An instance with options given by kebab- or snake-case name; string values are
        converted to the field's type."""
        fields = {f.name: f for f in cls.option_fields()}
        kwargs = {}
        for key, raw in options.items():
            fname = key.replace("-", "_")
            f = fields.get(fname)
            if f is None:
                known = ", ".join(_kebab(k) for k in fields) or "none"
                raise PassOptionError(f"pass {cls.name!r} has no option {key!r} (options: {known})")
            kwargs[fname] = _convert(cls.name, key, f, raw)
        return cls(**kwargs)

    def describe(self) -> str:
        """``name`` or ``name{opt=value,...}`` for options that differ from the defaults."""
        parts = []
        for f in self.option_fields():
            v = getattr(self, f.name)
            if f.default is dataclasses.MISSING or v != f.default:
                parts.append(f"{_kebab(f.name)}={_fmt(v)}")
        return self.name + ("{" + ",".join(parts) + "}" if parts else "")


def _kebab(s: str) -> str:
    return s.replace("_", "-")


def _fmt(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _convert(pass_name: str, key: str, f: dataclasses.Field, raw):
    t = f.type if not isinstance(f.type, str) else {"int": int, "float": float, "bool": bool, "str": str}.get(
        f.type.replace("Optional[", "").rstrip("]"), str)
    if not isinstance(raw, str):
        if t is float and isinstance(raw, int) and not isinstance(raw, bool):
            return float(raw)
        if isinstance(raw, t):
            return raw
        raise PassOptionError(f"pass {pass_name!r}: option {key!r} takes a {t.__name__}, got {raw!r}")
    try:
        if t is bool:
            low = raw.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if t is int:
            return int(raw.replace("_", ""), 0)
        return t(raw)
    except ValueError:
        raise PassOptionError(f"pass {pass_name!r}: option {key!r} takes a {t.__name__}, got {raw!r}") from None


# ---------------------------------------------------------------------------- registry
_PASSES: dict[str, type[Pass]] = {}


def register_pass(cls: type[Pass] | None = None, *, replace: bool = False):
    """Class decorator: register a pass under its kebab-case ``name``."""

    def deco(c: type[Pass]) -> type[Pass]:
        if not c.name or not _KEBAB.match(c.name):
            raise ValueError(f"pass class {c.__name__} needs a kebab-case name, got {c.name!r}")
        if not c.summary:
            raise ValueError(f"pass {c.name!r} needs a one-line summary")
        if c.name in _PASSES and _PASSES[c.name] is not c and not replace:
            raise ValueError(f"pass {c.name!r} is registered twice")
        _PASSES[c.name] = c
        return c

    return deco(cls) if cls is not None else deco


def unregister_pass(name: str) -> None:
    _PASSES.pop(name, None)


def registered_passes() -> list[type[Pass]]:
    return [_PASSES[k] for k in sorted(_PASSES)]


def get_pass(name: str) -> type[Pass]:
    cls = _PASSES.get(name)
    if cls is None:
        import difflib

        close = difflib.get_close_matches(name, list(_PASSES), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else f" (passes: {', '.join(sorted(_PASSES))})"
        raise UnknownPassError(f"unknown pass {name!r}{hint}")
    return cls


def all_graphs(graph: Graph) -> Iterable[Graph]:
    """``graph`` and every subgraph under it, outer graphs first."""
    yield graph
    for n in graph.nodes:
        for sg in n.subgraphs():
            yield from all_graphs(sg)


def name_list(option: str) -> set[str]:
    """The node names of a list option: ``a`` or, several, ``(a,b)`` in a spec (the
    parentheses keep the commas from separating options; `graphopt.quantize` writes them)."""
    s = option.strip()
    if s.startswith("(") and s.endswith(")"):
        s = s[1:-1]
    return {p.strip() for p in s.split(",") if p.strip()}
