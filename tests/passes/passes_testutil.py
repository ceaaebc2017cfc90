"""Helpers shared by the pass tests: run a pass with the verifier on, check idempotence and
the oracle's numbers, and mutate generated graphs so the passes have work to do."""

from __future__ import annotations

import sys

import numpy as np

from graphopt.ir import Graph, TensorData
from graphopt.ir.verifier import verify
from graphopt.pipeline import run_pipeline
from graphopt.testing import OracleError, assert_close, run_reference
from graphopt.testing.settings import examples  # reads $GRAPHOPT_HYPOTHESIS_EXAMPLES

N_EXAMPLES = examples(200)


def run_checked(graph: Graph, passes, inputs=None, check_numbers: bool = True):
    """Run ``passes`` with verify-each and check-numerics; check the numbers against the oracle
    and that a second run changes nothing. Returns the first run (its records say what changed)."""
    verify(graph)
    expected = None
    if check_numbers:
        try:
            expected = run_reference(graph, inputs)
        except OracleError as e:
            # The generated graph itself does not run: a generator (or registry) bug, not
            # the pass's. Say which graph, then skip the example.
            from hypothesis import assume, note

            from graphopt.ir.printer import print_ir

            note(f"the oracle cannot run the generated graph ({e}):\n{print_ir(graph)}")
            print(f"GENERATED GRAPH DOES NOT RUN: {e}\n{print_ir(graph)}", file=sys.stderr)
            assume(False)
    feeds = inputs
    if feeds is not None and not isinstance(feeds, dict):
        feeds = dict(zip((v.name for v in graph.inputs), feeds))
    # --check-numerics: the oracle after every pass that changed the graph, not only at the end
    run = run_pipeline(graph, passes, verify_each=True, check_numerics=check_numbers, inputs=feeds)
    verify(graph)
    if check_numbers:
        assert_close(expected, run_reference(graph, inputs))
    again = run_pipeline(graph, passes, verify_each=True)
    assert not any(r.changed for r in again.records), \
        f"second run changed the graph: {[(r.pass_name, r.journal[:3]) for r in again.records if r.changed]}"
    return run


def constify(graph: Graph, inputs: dict, pick) -> dict:
    """Turn the graph inputs ``pick(name)`` selects into constants holding their input data;
    returns the inputs left."""
    left = dict(inputs)
    for v in list(graph.inputs):
        if not pick(v.name) or not v.type.is_static:
            continue
        c = graph.add_constant(graph.fresh_name(v.name + "_c"), TensorData.from_numpy(np.asarray(inputs[v.name])))
        graph.replace_all_uses(v, c)
        graph.remove_input(v)
        del left[v.name]
    return left


def plant_noops(graph: Graph, choose) -> None:
    """Wrap some values in exact no-ops (x*1, x+(-0.0) style, Identity, a Transpose pair,
    Unsqueeze/Squeeze) for simplify to remove. ``choose(n)`` picks an int in [0, n)."""
    from graphopt.ops import build

    for node in list(graph.nodes):
        o = node.outputs[0] if node.outputs else None
        if o is None or o.type.shape is None or not o.type.dtype.is_float:
            continue
        k = choose(6)
        uses = o.uses()
        if k == 0 or not uses:
            continue
        dt = o.type.dtype.numpy
        if k == 1:
            new = build(graph, "Mul", [o, graph.add_constant(graph.fresh_name("one"), TensorData.from_numpy(np.ones([], dt)))],
                        after=node).output
        elif k == 2:
            new = build(graph, "Identity", [o], after=node).output
        elif k == 3:
            z = graph.add_constant(graph.fresh_name("zero"), TensorData.from_numpy(np.zeros([], dt)))
            new = build(graph, "Sub", [o, z], after=node).output
        elif k == 4 and o.type.rank >= 2:
            r = o.type.rank
            perm = list(reversed(range(r)))
            t1 = build(graph, "Transpose", [o], {"perm": perm}, after=node)
            new = build(graph, "Transpose", [t1.output], {"perm": perm}, after=t1).output
        elif k == 5:
            ax = graph.add_constant(graph.fresh_name("axes"), TensorData.from_numpy(np.array([0], np.int64)))
            u = build(graph, "Unsqueeze", [o, ax], after=node)
            new = build(graph, "Squeeze", [u.output, ax], after=u).output
        else:
            continue
        for u in uses:
            graph.set_input(u.node, u.index, new)


def plant_duplicates(graph: Graph, choose) -> None:
    """Copy some nodes (same op, attributes, inputs) and point some users at the copy."""
    for node in list(graph.nodes):
        if choose(3) != 0 or node.subgraphs():
            continue
        copy = graph.add_node(node.op_type, list(node.inputs), [None if o is None else o.type for o in node.outputs],
                              dict(node.attrs), domain=node.domain, after=node)
        for o, c in zip(node.outputs, copy.outputs):
            if o is None:
                continue
            for u in o.uses()[1::2]:
                if u.node is not copy:
                    graph.set_input(u.node, u.index, c)
