"""graphopt's default CPU schedules: TVM's CPU pipeline schedules nothing (untuned code
runs 50-80x slower than onnxruntime), so every fused PrimFunc gets one of these rules
before the build. A rule that fails on a function leaves it to the next; the last
(`generic`) only parallelizes and vectorizes, and an unscheduled function is still correct.

Rules, tried in order:

- ``conv`` (conv.py): graphopt's packed conv2d, found by its kernel tag.
- ``dense`` (dense.py): graphopt's packed matmul, found by its kernel tag.
- ``matmul`` (matmul.py): batched matmul of two activations.
- ``window`` (window.py): strided pooling windows.
- ``rows`` (rows.py): row-wise reductions and their epilogues (softmax, layer norm).
- ``generic`` (generic.py): parallelize and vectorize what is left.

Each rule registers itself (`registry.register_rule`) with its place in that order;
`apply.schedule_module` runs fast math (fast_math.py) and then the rules.
"""

from . import conv, dense, generic, matmul, rows, window  # noqa: F401  (register the rules)
from .apply import schedule_module
from .fast_math import fast_math
from .registry import RULES, Rule, register_rule, rules

__all__ = ["RULES", "Rule", "fast_math", "register_rule", "rules", "schedule_module"]
