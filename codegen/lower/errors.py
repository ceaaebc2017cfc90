"""The errors a lowering raises: a node it failed on, and the nodes it refused."""

from __future__ import annotations

from ...errors import GraphoptError, UnsupportedOpError


class LoweringError(GraphoptError):
    """A node whose lowering failed; the message names the node and op."""


class LoweringRefusedError(LoweringError, UnsupportedOpError):
    """Nodes of known ops whose lowering refused them (a case it does not handle, e.g. an
    axes input computed at run time), all of a graph's at once; ``ops`` lists (op, node)
    as UnsupportedOpError does, ``reasons`` each node's message."""

    def __init__(self, refused: list[tuple[str, str, str]], where: str = ""):
        UnsupportedOpError.__init__(self, [(op, node) for op, node, _ in refused], where)
        self.reasons = [why for _, _, why in refused]
        prefix = f"{where}: " if where else ""
        self.args = (f"{prefix}{len(refused)} node(s) cannot be lowered: " + "; ".join(self.reasons),)
