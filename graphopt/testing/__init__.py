"""Testing utilities, public API: the oracle and the hypothesis strategies.

    from graphopt.testing import run_reference, assert_close, strategies
"""

from .oracle import (TOLERANCES, Mismatch, OracleError, Tolerance, assert_close, compare_outputs, random_array,
                     random_inputs, run_reference, tolerance)

__all__ = ["TOLERANCES", "Mismatch", "OracleError", "Tolerance", "assert_close", "compare_outputs",
           "random_array", "random_inputs", "run_reference", "tolerance"]
