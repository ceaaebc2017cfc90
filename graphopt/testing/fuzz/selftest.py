"""Cases with a known outcome, to check the harness itself (tests/fuzz): each ends one way
the classifier must tell apart. Not part of the campaign."""

from __future__ import annotations

import os
import signal
import time

from .case import case
from .outcome import ACCEPT, ERROR, Obs


def segfault(ctx) -> Obs:
    obs = Obs(expect=ERROR)
    with obs.call("os.kill(SIGSEGV)"):
        os.kill(os.getpid(), signal.SIGSEGV)
    return obs


def sleep(ctx, seconds: float) -> Obs:
    obs = Obs(expect=ERROR)
    with obs.call(f"time.sleep({seconds})"):
        time.sleep(seconds)
    return obs


def user_error(ctx) -> Obs:
    from graphopt.errors import ModelLoadError

    obs = Obs(expect=ERROR)
    with obs.call("raise ModelLoadError"):
        raise ModelLoadError("model.onnx: not a model")
    return obs


def bug(ctx) -> Obs:
    obs = Obs(expect=ERROR)
    with obs.call("{}['x']"):
        {}["x"]  # noqa: B018 - the bug under test
    return obs


def accepted(ctx, expect: str) -> Obs:
    obs = Obs(expect=expect)
    with obs.call("1 + 1"):
        pass
    return obs


def broken_case(ctx) -> Obs:
    raise RuntimeError("the case itself is broken")


def cases() -> list:
    return [case("self", "segfault", segfault), case("self", "hang", sleep, args={"seconds": 60}, timeout=1),
            case("self", "user-error", user_error), case("self", "bug", bug),
            case("self", "accepted", accepted, args={"expect": ACCEPT}),
            case("self", "accepted-invalid", accepted, args={"expect": ERROR}),
            case("self", "after-crash", accepted, args={"expect": ACCEPT}),
            case("self", "broken", broken_case)]
