"""The outcome of matching a pattern: truthy with bindings and the matched nodes, or falsy
with the reason it failed (what ``--explain`` prints)."""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from ..ir import Node


class Match:
    """Truthy with ``bindings`` (pattern names -> values, nodes or attribute values) and
    ``nodes`` (every matched node, the root first); falsy with ``reason``, and ``near``
    when the pattern's ops did fit and containment or the condition refused the site (a
    near miss: what the fusion report lists, unlike sites that merely have the root's op)."""

    __slots__ = ("ok", "reason", "bindings", "nodes", "root", "near")

    def __init__(self, ok: bool, reason: str = "", bindings: Optional[dict] = None,
                 nodes: Optional[list[Node]] = None, root: Optional[Node] = None, near: bool = False):
        self.ok = ok
        self.reason = reason
        self.near = near
        self.bindings = bindings if bindings is not None else {}
        self.nodes = nodes if nodes is not None else []
        self.root = root

    def __bool__(self) -> bool:
        return self.ok

    def __getitem__(self, key: str):
        return self.bindings[key]

    def __getattr__(self, key: str):
        try:
            return self.bindings[key]
        except KeyError:
            raise AttributeError(key) from None

    def get(self, key: str, default=None):
        """A binding that may be absent (inside an `Opt` or a `Maybe` that matched nothing)."""
        v = self.bindings.get(key)
        return default if v is None else v

    def array(self, key: str) -> np.ndarray:
        """The data of a bound constant value."""
        return self.bindings[key].const.numpy()

    def __repr__(self) -> str:
        return f"<Match {sorted(self.bindings)}>" if self.ok else f"<no match: {self.reason}>"


def fail(reason: str, near: bool = False) -> Match:
    return Match(False, reason, near=near)


Condition = Callable[[Match], Optional[str]]


def all_of(*conds: Condition) -> Condition:
    """A condition that holds when every one of ``conds`` does; else the first reason."""

    def where(m):
        for c in conds:
            r = c(m)
            if r:
                return r
        return None

    return where
