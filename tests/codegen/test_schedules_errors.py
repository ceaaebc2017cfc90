"""A default schedule rule that TVM says does not apply falls through to the next rule; a
rule that raises anything else is a bug and surfaces as an InternalError naming the rule
and the kernel (it used to be swallowed, leaving the kernel silently unscheduled)."""

from __future__ import annotations

import numpy as np
import pytest


def _module():
    from graphopt.codegen.build import prepare
    from graphopt.codegen.lower import lower
    from graphopt.codegen.target import Target
    from graphopt.ir import DType, Graph, TensorType

    g = Graph("g")
    t = TensorType(DType.FLOAT32, (4, 64))
    x = g.add_input("x", t)
    a = g.add_node("Relu", [x], [t], name="relu")
    g.set_outputs([a.output])
    tgt = Target.parse("cpu").tvm
    return prepare(lower(g).mod, tgt), tgt


def _replace_rule(monkeypatch, name, fn):
    import dataclasses

    from graphopt.codegen.schedules import registry

    monkeypatch.setitem(registry.RULES, name, dataclasses.replace(registry.RULES[name], fn=fn))


def test_a_rule_that_raises_a_bug_is_an_internal_error(monkeypatch):
    from graphopt.codegen import schedules
    from graphopt.errors import InternalError

    def buggy(func, lanes):
        return func.no_such_attribute

    _replace_rule(monkeypatch, "generic", buggy)
    mod, tgt = _module()
    with pytest.raises(InternalError, match="schedule rule generic on kernel .relu.: AttributeError"):
        schedules.schedule_module(mod, tgt)


def test_a_rule_tvm_refuses_falls_through_to_the_next(monkeypatch):
    from tvm.s_tir import ScheduleError

    from graphopt.codegen import schedules
    from graphopt.codegen.build import BuildStats

    tried = []

    def refused(func, lanes):
        tried.append(1)
        raise ScheduleError("not applicable")

    _replace_rule(monkeypatch, "rows", refused)
    mod, tgt = _module()
    stats = BuildStats()
    schedules.schedule_module(mod, tgt, stats=stats)
    assert tried and stats.scheduled == {"generic": stats.kernels}
