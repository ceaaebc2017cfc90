"""Rewrite rules over the IR: patterns that match DAGs (a value may feed several pattern
nodes; commutative ops match both operand orders; optional inputs and optional nodes), a
containment check, rules with one-line algebra grouped in rule sets, a worklist driver,
and the explain log of what applied where and why it did not.

    Op("Transpose", Op("Transpose", Var("x"), perm=Bind("p")), perm=Bind("q"))

Only `graphopt.ir` and `graphopt.ops` are imported here; the driver takes the pass
context by what it does (bisect limit, explain), so the pass manager can import this
package without a cycle.
"""

from .driver import RuleError, apply_rules
from .explain import ExplainLog
from .match import Condition, Match, all_of, fail
from .pattern import Bind, Const, Maybe, OneOf, Op, Opt, Pattern, Var
from .replace import erase_dead, replace_node, replace_values, why_not_replace
from .rule import Replacement, Rewriter, Rule, RuleSet

__all__ = [
    "Bind", "Condition", "Const", "ExplainLog", "Match", "Maybe", "OneOf", "Op", "Opt", "Pattern", "Replacement", "Rewriter",
    "Rule", "RuleError", "RuleSet", "Var", "all_of", "apply_rules", "erase_dead", "fail",
    "replace_node", "replace_values", "why_not_replace",
]
