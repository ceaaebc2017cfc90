"""Errors the pass manager reports to users: each names the pass (and the file, where the
caller knows it) on one line."""

from __future__ import annotations

from ..errors import GraphoptError


class PassError(GraphoptError):
    """Base of the pass manager's errors."""


class UnknownPassError(PassError):
    """A pass or pipeline name that is not registered."""


class PassOptionError(PassError):
    """A bad pass option (unknown name or a value of the wrong type)."""


class PassFailedError(PassError):
    """A pass raised an exception, or its reported ``changed`` disagrees with the journal."""


class PassVerificationError(PassError):
    """The verifier rejected the graph a pass left behind (``--verify-each``)."""


class NumericsMismatchError(PassError):
    """After a pass the oracle's numbers differ from the imported graph's (``--check-numerics``)."""

    def __init__(self, msg: str, pass_name: str = "", mismatches=()):
        super().__init__(msg)
        self.pass_name = pass_name
        self.mismatches = list(mismatches)
