"""The ONNX conformance runner: onnx's own node test suite through every graphopt stage.

    graphopt conformance [--only REGEX] [--stage ort,O0,O1,tvm] [--json PATH]
"""

from .runner import MIN_CASES, STATUSES, run_conformance

__all__ = ["MIN_CASES", "STATUSES", "run_conformance"]
