"""The pass manager: passes and their registry, pipelines, instruments; the rewrite rules
(`graphopt.rewrite`) re-exported for passes.

    from graphopt.pipeline import run_passes
    run_passes(graph, "O1", verify_each=True, time_passes=True)

Passes live in ``passes/`` (installed as ``graphopt.passes``), one per file, and register
themselves by kebab-case name with `register_pass`.
"""

from .api import PipelineRun, clone_graph, run_passes, run_pipeline
from .base import Application, Pass, PassContext, all_graphs, get_pass, register_pass, registered_passes, unregister_pass
from .bisect import BisectResult, bisect
from .errors import (NumericsMismatchError, PassError, PassFailedError, PassOptionError, PassVerificationError,
                     UnknownPassError)
from .instruments import CheckNumerics, DumpIR, PrintAfter, TimePasses, VerifyEach
from .manager import Fixpoint, Instrument, PassManager, PassRecord
from .report import fusion_report
from .pipelines import LOWERING_PREP, PIPELINES, build_pipeline, lowering_pipeline, parse_spec, pipeline_names
from ..rewrite import (Bind, Const, ExplainLog, Match, Maybe, Op, Opt, Rewriter, Rule, RuleError, RuleSet, Var, all_of,
                       apply_rules, fail)
from .. import passes  # noqa: F401,E402  (registers graphopt's passes; they import pipeline.base, not this package)

__all__ = [
    "Application", "Bind", "LOWERING_PREP", "lowering_pipeline", "BisectResult", "CheckNumerics", "Const", "DumpIR", "ExplainLog", "Fixpoint", "Instrument",
    "Match", "Maybe", "NumericsMismatchError", "Op", "Opt", "PIPELINES", "Pass", "PassContext", "PassError", "PassFailedError",
    "PassManager", "PassOptionError", "PassRecord", "PassVerificationError", "PipelineRun", "PrintAfter", "Rewriter",
    "Rule", "RuleError", "RuleSet", "TimePasses", "UnknownPassError", "Var", "VerifyEach", "all_graphs",
    "all_of", "apply_rules", "bisect", "build_pipeline", "clone_graph", "fail", "fusion_report", "get_pass", "parse_spec", "pipeline_names",
    "register_pass", "registered_passes", "run_passes", "run_pipeline", "unregister_pass",
]
