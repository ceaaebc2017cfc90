"""Every pass on hypothesis-generated graphs: verify after the pass, the oracle's numbers
before and after agree, and a second run changes nothing. ``GRAPHOPT_HYPOTHESIS_EXAMPLES``
raises the number of examples (default 200 per pass)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graphopt.testing import strategies as gst

from passes_testutil import N_EXAMPLES, constify, plant_duplicates, plant_noops, run_checked

SETTINGS = dict(max_examples=N_EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@settings(**SETTINGS)
@given(gst.graph_and_inputs(max_nodes=12), st.randoms(use_true_random=False))
def test_fold_constants_keeps_numbers(case, rnd):
    g, inputs = case
    # Constant inputs give the folder whole subgraphs to evaluate.
    inputs = constify(g, inputs, lambda name: rnd.random() < 0.6)
    run_checked(g, ["fold-constants"], inputs)
    run_checked(g, ["fold-constants{max-elements=8}"], inputs)


@settings(**SETTINGS)
@given(gst.graph_and_inputs(max_nodes=12), st.randoms(use_true_random=False))
def test_dce_keeps_numbers(case, rnd):
    g, inputs = case
    run_checked(g, ["dce"], inputs)


@settings(**SETTINGS)
@given(gst.graph_and_inputs(max_nodes=12), st.randoms(use_true_random=False))
def test_cse_keeps_numbers(case, rnd):
    g, inputs = case
    plant_duplicates(g, rnd.randrange)
    run_checked(g, ["cse"], inputs)


@settings(**SETTINGS)
@given(gst.graph_and_inputs(max_nodes=12, symbolic=True), st.randoms(use_true_random=False))
def test_simplify_keeps_numbers(case, rnd):
    g, inputs = case
    plant_noops(g, rnd.randrange)
    run_checked(g, ["simplify"], inputs)


@settings(**{**SETTINGS, "max_examples": max(20, N_EXAMPLES // 4)})
@given(gst.graph_and_inputs(max_nodes=12), st.randoms(use_true_random=False))
def test_o1_keeps_numbers(case, rnd):
    g, inputs = case
    plant_noops(g, rnd.randrange)
    plant_duplicates(g, rnd.randrange)
    inputs = constify(g, inputs, lambda name: rnd.random() < 0.3)
    run_checked(g, "O1", inputs)
