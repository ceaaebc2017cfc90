"""Testing utilities, public API: the oracle and the hypothesis strategies.

    from graphopt.testing import run_reference, assert_close, strategies
"""

from .oracle import (EXACT_REFERENCE_OPS, MODEL_TOLERANCE, TOLERANCES, Mismatch, OracleError, Tolerance, assert_close,
                     compare_outputs, evaluate_model, random_array, random_inputs, reference_for, run_reference, tolerance)

__all__ = ["EXACT_REFERENCE_OPS", "MODEL_TOLERANCE", "TOLERANCES", "Mismatch", "OracleError", "Tolerance", "assert_close",
           "compare_outputs", "evaluate_model", "random_array", "random_inputs", "reference_for", "run_reference",
           "tolerance"]


def __getattr__(name):
    # The hypothesis strategies load on first use: hypothesis is a test dependency, and the
    # oracle is also used outside tests (conformance, check-numerics).
    if name == "strategies":
        import importlib

        return importlib.import_module(f"{__name__}.strategies")
    raise AttributeError(f"module 'graphopt.testing' has no attribute {name!r}")
