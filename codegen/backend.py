"""The back end of a compile: one prepared graph (the compile's pipeline has run) lowered,
tuned within a budget, scheduled and built into a Relax executable whose library carries
its id (`artifact.library_id`). `graphopt.compiler.compile_model` drives it, once per TVM
stage."""

from __future__ import annotations

import time


def _stamp_library_id(inputs, outputs, params) -> tuple:
    """A function that returns the library's id (see `artifact.library_id`), by name, for
    `build` to add; (those functions, nonce, parameter specs for the manifest)."""
    import secrets

    from tvm import relax

    from .artifact import LIBRARY_ID_FN, library_id, param_specs

    nonce, specs = secrets.token_hex(8), param_specs(params)
    fn = relax.Function([], relax.ShapeExpr(library_id(nonce, inputs, outputs, specs)))
    return {LIBRARY_ID_FN: fn.with_attr("global_symbol", LIBRARY_ID_FN)}, nonce, specs


def build_graph(graph, tgt, report, tune_trials, tune_time, cache_dir, progress, sig_inputs, sig_outputs,
                lowered=None):
    """Lower (unless ``lowered`` is the graph's lowering already), (tune,) build one
    graph; accumulates into ``report``. (executable, params, library nonce, parameter
    specs, the kernel map: `codegen.kernel_map`); ``sig_*`` are what the manifest records of its inputs and outputs, which the
    library's id covers."""
    from .build import BuildStats, build
    from .lower import lower

    if lowered is None:
        t0 = time.perf_counter()
        lowered = lower(graph, target=tgt)
        report.lower_s += time.perf_counter() - t0
    database = None
    if tune_trials or tune_time:
        from .tuning import tune

        t0 = time.perf_counter()
        database, info = tune(lowered.mod, tgt, trials=tune_trials, minutes=tune_time, cache_dir=cache_dir,
                              progress=progress)
        report.tune_s += time.perf_counter() - t0
        if report.tuning:  # several TVM stages (fallback): merge
            for k in ("trials", "failed", "seconds"):
                report.tuning[k] = report.tuning.get(k, 0) + info.get(k, 0)
            report.tuning["tasks"] = report.tuning.get("tasks", []) + info.get("tasks", [])
            report.tuning["reused"] = report.tuning.get("reused", True) and info.get("reused", False)
        else:
            report.tuning = info
    else:
        from .tuning import existing_database

        database = existing_database(tgt, cache_dir)
    extra, nonce, specs = _stamp_library_id(sig_inputs, sig_outputs, lowered.params)
    stats = BuildStats()
    ex = build(lowered.mod, tgt, database=database, stats=stats, extra=extra, var_values=lowered.var_values)
    report.build_s += stats.seconds
    report.kernels += stats.kernels
    report.kernel_names += stats.kernel_names
    for k, v in stats.scheduled.items():
        report.scheduled[k] = report.scheduled.get(k, 0) + v
    report.from_database += stats.from_database
    return ex, lowered.params, nonce, specs, stats.calls
