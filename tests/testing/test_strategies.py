"""Property tests of `graphopt.testing.strategies`, and through the graphs they draw, of
the verifier, the text form (printer/parser) and the ONNX exporter/importer.

``GRAPHOPT_HYPOTHESIS_EXAMPLES=N`` runs every property here with N examples.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

import graphopt
from graphopt import parse_ir, print_ir, verify
from graphopt.ir import Graph
from graphopt.testing import run_reference
from graphopt.testing import strategies as gst
from graphopt.testing.settings import ENV_EXAMPLES, examples

_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]


def props(n: int):
    return settings(max_examples=examples(n), deadline=None, suppress_health_check=_QUIET)


# The configurations every property runs over (one_of shrinks towards the first).
_CONFIGS = [
    dict(),
    dict(symbolic=True),
    dict(dtypes=("f32", "f16", "f64")),
    dict(symbolic=True, allow_constants=False),
    dict(dtypes=("f16",), max_nodes=12),
    dict(dtypes=("f64",), symbolic=True, max_nodes=12),
]
ANY_GRAPH = st.one_of(*[gst.graphs(**c) for c in _CONFIGS])
ANY_CASE = st.one_of(*[gst.graph_and_inputs(**c) for c in _CONFIGS])


def _bind(graph: Graph, inputs: Mapping[str, np.ndarray]) -> dict[str, int]:
    dims: dict[str, int] = {}
    for v in graph.inputs:
        for d, n in zip(v.type.shape, inputs[v.name].shape):
            if isinstance(d, str):
                dims[d] = n
    return dims


def _check_against_types(values, results, dims: dict[str, int]) -> None:
    """Results have the dtypes and shapes of the IR types (a symbol means one size
    throughout) and are finite and within the strategies' bound."""
    assert len(values) == len(results)
    for v, r in zip(values, results):
        assert r.dtype == v.type.dtype.numpy, f"%{v.name}: {r.dtype} vs {v.type}"
        assert len(r.shape) == len(v.type.shape), f"%{v.name}: shape {r.shape} vs {v.type}"
        for d, n in zip(v.type.shape, r.shape):
            if isinstance(d, int):
                assert d == n, f"%{v.name}: shape {r.shape} vs {v.type}"
            else:
                assert dims.setdefault(d, n) == n, f"%{v.name}: symbol {d} is {dims[d]} elsewhere, {n} here"
        if r.size:
            assert np.all(np.isfinite(r)), f"%{v.name} has NaN or Inf"
            worst = float(np.max(np.abs(r.astype(np.float64))))
            assert worst <= gst.VALUE_BOUND * 1.01, f"%{v.name} reaches {worst}"


def _with_all_values_as_outputs(graph: Graph) -> tuple[Graph, list]:
    """A copy of ``graph`` (through the text form) whose outputs are all node outputs."""
    copy = parse_ir(print_ir(graph, full_constants=True))
    values = [o for n in copy.nodes for o in n.outputs if o is not None]
    copy.outputs = values
    return copy, values


# ---------------------------------------------------------------------------- properties
@props(200)
@given(ANY_GRAPH)
def test_generated_graphs_verify(g):
    verify(g)
    assert 1 <= len(g) <= 30
    assert g.outputs and len({o.name for o in g.outputs}) == len(g.outputs)
    assert {n.op_type for n in g.nodes} <= gst.ALL_OPS


@props(200)
@given(ANY_GRAPH)
def test_print_parse_round_trip(g):
    for full in (False, True):
        text = print_ir(g, full_constants=full)
        parsed = parse_ir(text)
        assert print_ir(parsed, full_constants=full) == text
        verify(parsed)


@props(200)
@given(ANY_CASE)
def test_onnx_round_trip_runs_identically(case):
    g, inputs = case
    expected = run_reference(g, inputs)
    back = graphopt.import_onnx(graphopt.export_onnx(g))
    verify(back)
    assert [v.name for v in back.inputs] == [v.name for v in g.inputs]
    assert [v.name for v in back.outputs] == [v.name for v in g.outputs]
    assert [v.type for v in back.outputs] == [v.type for v in g.outputs]
    actual = run_reference(back, inputs)
    assert len(actual) == len(expected)
    for i, (a, e) in enumerate(zip(actual, expected)):
        assert a.dtype == e.dtype and a.shape == e.shape, f"output {i}"
        assert np.array_equal(a, e), f"output {i} ({g.outputs[i].name}) differs after the ONNX round trip"


@props(100)
@given(gst.graphs(symbolic=True), st.integers(0, 2**32 - 1), st.data())
def test_symbolic_graphs_run_at_two_sizes(g, seed, data):
    syms = gst.symbols_of(g)
    assert set(syms) <= set(gst.SYMBOLS)
    sizes = data.draw(st.lists(st.integers(1, 4), min_size=2, max_size=2, unique=True), label="sizes")
    for k, size in enumerate(sizes):
        dims = {s: size + i for i, s in enumerate(syms)}  # distinct sizes for distinct symbols
        inputs = gst.inputs_for(g, seed=seed + k, dims=dims)
        outs = run_reference(g, inputs)
        _check_against_types(g.outputs, outs, dict(dims))


@props(100)
@given(ANY_CASE)
def test_every_value_is_bounded_and_typed_as_onnxruntime_computes(case):
    g, inputs = case
    copy, values = _with_all_values_as_outputs(g)
    results = run_reference(copy, inputs)
    _check_against_types(values, results, _bind(g, inputs))


def test_covers_every_op_and_shape_of_graph():
    """Over a few hundred graphs (derandomized), every op appears, and so do DAG reuse,
    several outputs, multi-output nodes, constants and propagated symbols."""
    from collections import Counter

    seen: Counter = Counter()

    @settings(max_examples=300, deadline=None, derandomize=True, database=None, suppress_health_check=_QUIET)
    @given(st.one_of(gst.graphs(), gst.graphs(symbolic=True)))
    def collect(g):
        seen.update(n.op_type for n in g.nodes)
        seen["#reuse"] += any(len(v.consumers()) > 1 for v in g.values())
        seen["#outputs>1"] += len(g.outputs) > 1
        seen["#multi-output"] += any(len(n.outputs) > 1 for n in g.nodes)
        seen["#constants"] += bool(g.constants)
        seen["#symbolic-output"] += any(isinstance(d, str) for o in g.outputs for d in o.type.shape)
        seen["#nodes>=20"] += len(g) >= 20

    collect()
    missing = [op for op in sorted(gst.ALL_OPS) if not seen[op]]
    assert not missing, f"never generated: {missing}"
    for feature in ("#reuse", "#outputs>1", "#multi-output", "#constants", "#symbolic-output", "#nodes>=20"):
        assert seen[feature] >= 10, (feature, seen[feature])


# ---------------------------------------------------------------------------- arguments
@props(60)
@given(gst.graphs(ops=["Relu", "Add", "conv", "Div"], max_nodes=8))
def test_ops_restricts_the_op_types(g):
    verify(g)
    assert {n.op_type for n in g.nodes} <= {"Relu", "Add", "Conv", "Div"}


@props(60)
@given(gst.graphs(min_nodes=4, max_nodes=6))
def test_node_count_bounds(g):
    assert 4 <= len(g) <= 6


@props(40)
@given(gst.graphs(min_nodes=0, max_nodes=0))
def test_no_nodes(g):
    verify(g)
    assert len(g) == 0 and g.outputs[0] in g.inputs


@props(60)
@given(gst.graph_and_inputs(ops=["unary"], allow_constants=False, max_nodes=6))
def test_unary_without_constants(case):
    g, inputs = case
    assert not g.constants
    assert {n.op_type for n in g.nodes} <= set(gst.FAMILIES["unary"])
    for a in inputs.values():
        assert a.dtype == np.float32 and np.all(np.abs(a) <= 1)
    run_reference(g, inputs)


@props(50)
@given(gst.tensor_types(dtypes=("f32", "i64"), symbols=("N",)))
def test_tensor_types(t):
    assert t.rank is not None and t.rank <= 4
    assert all(d == "N" or (isinstance(d, int) and 1 <= d <= 5) for d in t.shape)


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown op"):
        gst.graphs(ops=["NoSuchOp"])
    with pytest.raises(ValueError, match="float"):
        gst.graphs(dtypes=("i64",))
    with pytest.raises(ValueError, match="min_nodes"):
        gst.graphs(min_nodes=5, max_nodes=2)
    with pytest.raises(ValueError, match="max_symbol_size"):
        gst.graph_and_inputs(max_symbol_size=100)


def test_shrinks_to_a_small_graph():
    g = find(gst.graphs(), lambda g: any(n.op_type == "Gemm" for n in g.nodes),
             settings=settings(database=None, max_examples=2000, deadline=None, derandomize=True))
    assert len(g) <= 2, print_ir(g)  # in practice a lone Gemm


def test_examples_reads_the_environment(monkeypatch):
    monkeypatch.delenv(ENV_EXAMPLES, raising=False)
    assert examples(200) == 200
    monkeypatch.setenv(ENV_EXAMPLES, "1000")
    assert examples(200) == 1000
    monkeypatch.setenv(ENV_EXAMPLES, "many")
    with pytest.raises(ValueError):
        examples(200)


@given(gst.graph_and_inputs(ops=["Conv"], max_nodes=3))
@settings(max_examples=10, deadline=None)
def test_conv_only_graphs_can_be_drawn(gi):
    g, inputs = gi
    assert all(n.op_type == "Conv" for n in g.nodes)
