"""Compare a compiled model's intermediate values with the oracle's, kernel by kernel:

    report = graphopt.compare_intermediates("art/", {"x": x})
    print(report)            # the first kernel whose output diverges, or how many agreed
    report.first             # that KernelCheck, or None

The compiled program runs as built, each kernel call's outputs captured on the way
(`runtime.kernel_trace`: a second VM over the same executable, with an instrument); the
build's kernel map (manifest "kernels", `codegen.kernel_map`) names the graph values each
call outputs. The oracle (onnxruntime with its optimizations off, `frontend.reference`)
runs the graph the library was compiled from (the artifact's ``graph.onnx``) on the same
inputs, with those values added as graph outputs. Values the oracle cannot expose (inside
a fused op's function, or a call the map could not follow) are counted, not compared.
Inputs not given are generated (seeded, deterministic) from the artifact's input specs.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence, Union

import numpy as np

from .errors import GraphoptError

__all__ = ["KernelCheck", "IntermediatesReport", "compare_intermediates", "generated_inputs"]


@dataclass
class KernelCheck:
    """One output of one kernel call, in execution order."""

    position: int            # the call's place in the run (0-based, over every TVM stage)
    kernel: str
    output: int              # which output of the call
    value: Optional[str]     # the graph value compared (None: none known)
    node: Optional[str]
    op: Optional[str]
    nodes: list              # the graph nodes the kernel computes (its outputs' and those traced inside)
    sources: list            # the nodes of the model as imported that they came from (provenance)
    status: str              # "ok", "diverges", "no-oracle", "not-captured"
    note: str = ""
    # why "no-oracle": "step" (a step of a node's lowering: no graph value of its own),
    # "hidden" (a value the oracle cannot expose), "unmapped" (the map could not follow it)
    reason: Optional[str] = None
    max_abs: Optional[float] = None
    max_rel: Optional[float] = None
    mismatched: int = 0
    size: int = 0
    rtol: Optional[float] = None
    atol: Optional[float] = None

    def describe(self) -> str:
        what = f"%{self.value} (node {self.node}, {self.op})" if self.value else "no graph value"
        head = f"kernel {self.kernel} (call {self.position + 1}), output {self.output}: {what}"
        if self.status == "diverges":
            nums = (f"max abs error {self.max_abs:.4g}, max rel error {self.max_rel:.4g} "
                    f"(rtol {self.rtol:g}, atol {self.atol:g}); {self.mismatched} of {self.size} elements beyond it")
            return f"{head}\n  {nums}" + (f"; {self.note}" if self.note else "")
        return head + (f": {self.note}" if self.note else "")


@dataclass
class IntermediatesReport:
    checks: list                               # KernelCheck, in execution order
    generated: list = field(default_factory=list)  # the inputs generated (not given), by name
    seed: int = 0
    rtol: Optional[float] = None               # as given (None: per dtype)
    atol: Optional[float] = None

    @property
    def first(self) -> Optional[KernelCheck]:
        """The first kernel output (in execution order) that diverges, or None."""
        return next((c for c in self.checks if c.status == "diverges"), None)

    def count(self, status: str) -> int:
        return sum(1 for c in self.checks if c.status == status)

    @property
    def compared(self) -> int:
        return self.count("ok") + self.count("diverges")

    def __str__(self) -> str:
        lines = []
        if self.generated:
            lines.append(f"inputs generated (seeded random, seed {self.seed}; not given): {', '.join(self.generated)}")
        tol = "per dtype" if self.rtol is None and self.atol is None else f"rtol {self.rtol}, atol {self.atol}"
        first = self.first
        why = Counter(c.reason for c in self.checks if c.status == "no-oracle")
        said = {"step": "steps inside a node's lowering with no graph value of their own",
                "hidden": "values the oracle cannot expose", "unmapped": "calls the kernel map could not follow"}
        detail = "; ".join(f"{n} {said.get(r, r)}" for r, n in sorted(why.items(), key=lambda x: str(x[0])))
        counts = (f"{self.compared} kernel output(s) compared, {self.count('no-oracle')} without an oracle value"
                  + (f" ({detail})" if detail else "") + f", {self.count('not-captured')} not captured")
        if first is None:
            lines.append(f"no kernel output diverges from the oracle ({tol}): {counts}")
        else:
            lines.append("first diverging kernel: " + first.describe())
            lines.append(f"  nodes: {', '.join(first.nodes) or 'not known'}")
            if first.sources and first.sources != first.nodes:
                lines.append(f"  source nodes: {', '.join(first.sources)}")
            later = self.count("diverges") - 1
            lines.append(f"  ({counts}; {later} later output(s) diverge too)")
        return "\n".join(lines)


def generated_inputs(specs: Sequence[dict], given: Mapping[str, np.ndarray], seed: int = 0) -> dict:
    """Arrays for the inputs in ``specs`` (manifest entries) that ``given`` lacks: floats
    in [-1, 1], ints in [0, 4], bools; a named dim takes its size from a given input that
    has it, else 2. Deterministic for a seed."""
    rng = np.random.default_rng(seed)
    dims: dict = {}
    for s in specs:
        a = given.get(s["name"])
        if a is not None and s.get("shape") is not None and np.ndim(a) == len(s["shape"]):
            for d, n in zip(s["shape"], np.shape(a)):
                if isinstance(d, str):
                    dims.setdefault(d, int(n))
    out = {}
    for s in specs:
        if s["name"] in given:
            continue
        if s.get("shape") is None:
            raise GraphoptError(f"input {s['name']!r}: its rank is not known; give it with --input")
        shape = tuple(d if isinstance(d, int) else dims.setdefault(d, 2) for d in s["shape"])
        dt = s["dtype"]
        if dt in ("float16", "float32", "float64", "bfloat16"):
            a = rng.uniform(-1, 1, shape).astype(np.float32 if dt == "bfloat16" else dt)
            if dt == "bfloat16":
                raise GraphoptError(f"input {s['name']!r}: bfloat16 inputs are not generated; give it with --input")
        elif dt == "bool":
            a = rng.integers(0, 2, shape).astype(bool)
        else:
            try:
                a = rng.integers(0, 5, shape).astype(dt)
            except TypeError:
                raise GraphoptError(f"input {s['name']!r}: cannot generate {dt} values; give it with --input") from None
        out[s["name"]] = a
    return out


def _default_tolerance(dtype: np.dtype) -> tuple[float, float]:
    from .ir import DType
    from .testing.oracle import MODEL_TOLERANCE, tolerance

    try:
        dt = DType.from_numpy(dtype)
    except Exception:
        return 0.0, 0.0
    t = tolerance(dt)
    if dt.is_float:  # intermediates deep in a network sum in other orders than the oracle's
        return max(t.rtol, MODEL_TOLERANCE.rtol), max(t.atol, MODEL_TOLERANCE.atol)
    return t.rtol, t.atol


def _errors(a: np.ndarray, e: np.ndarray, rtol: float, atol: float) -> tuple[int, float, float]:
    """(elements beyond tolerance, max abs error, max rel error) of ``a`` against ``e``."""
    if a.dtype.kind in "fc" or e.dtype.kind in "fc":
        ok = np.isclose(a, e, rtol=rtol, atol=atol, equal_nan=True)
    else:
        ok = np.abs(a.astype(np.float64) - e.astype(np.float64)) <= atol + rtol * np.abs(e.astype(np.float64))
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        err = np.abs(a.astype(np.float64) - e.astype(np.float64))
        rel = err / np.abs(e.astype(np.float64))
    fin = np.isfinite(err)
    max_abs = float(err[fin].max()) if fin.any() else 0.0
    finr = np.isfinite(rel)
    max_rel = float(rel[finr].max()) if finr.any() else 0.0
    nan_diff = np.isnan(a.astype(np.float64)) != np.isnan(e.astype(np.float64))
    if nan_diff.any():
        max_abs = max_rel = float("inf")
    return int(ok.size - np.count_nonzero(ok)), max_abs, max_rel


def _stage_maps(manifest: dict, stages: list) -> list:
    """(stage, its kernel map or None) per stage in run order."""
    if "stages" not in manifest:
        return [(stages[0], manifest.get("kernels"))]
    return [(st, sp.get("kernels") if sp.get("kind") == "tvm" else None)
            for st, sp in zip(stages, manifest["stages"])]


def _oracle_graph(model):
    """The graph the library was compiled from, from the artifact's ONNX."""
    from .codegen import artifact
    from .frontend.onnx_import import import_onnx

    data = model.payload(artifact.ORACLE)
    if data is None:
        why = model.manifest.get("oracle_missing") or "compiled before artifacts kept their graph"
        raise GraphoptError(f"this artifact holds no graph for the oracle to run ({why}); recompile the model "
                            "with this graphopt to compare intermediates")
    return import_onnx(data)


def _values_by_name(graph) -> dict:
    found = {v.name: v for v in graph.inputs}
    for n in graph.nodes:
        for o in n.outputs:
            if o is not None:
                found[o.name] = o
    return found


def _run_oracle(graph, wanted: list, feeds: dict) -> dict:
    """{value name: the oracle's array} for ``wanted`` values of ``graph`` (top-level)."""
    from .frontend.onnx_export import export_onnx
    from .frontend.reference import evaluate_model

    have = _values_by_name(graph)
    outs = list(graph.outputs)
    names = {o.name for o in outs}
    for nm in wanted:
        if nm in have and nm not in names and have[nm].producer is not None:
            outs.append(have[nm])
            names.add(nm)
    graph.outputs = outs
    model = export_onnx(graph)
    res = evaluate_model(model, {v.name: feeds[v.name] for v in graph.inputs})
    return {o.name: np.asarray(r) for o, r in zip(outs, res)}


def compare_intermediates(model, inputs: Union[Mapping[str, np.ndarray], Sequence[np.ndarray], None] = None, *,
                          rtol: Optional[float] = None, atol: Optional[float] = None,
                          seed: int = 0) -> IntermediatesReport:
    """Run ``model`` (a CompiledModel or an artifact folder) and the oracle on the same
    inputs (by name, or in order; those missing are generated, seeded by ``seed``) and
    compare every kernel call's outputs; see the module's docstring. ``rtol``/``atol``:
    the tolerance (default: per dtype, floats at least graphopt's whole-model tolerance)."""
    from .runtime import CompiledModel
    from .runtime.inputs import bind_inputs, input_specs
    from .runtime.kernel_trace import trace_stage
    from .runtime.stages import TvmStage

    if not isinstance(model, CompiledModel):
        from .api import load

        model = load(model)
    manifest = model.manifest
    names = model.input_names
    given = dict(inputs) if isinstance(inputs, Mapping) else dict(zip(names, inputs or ()))
    unknown = [k for k in given if k not in names]
    if unknown:
        raise GraphoptError(f"input {unknown[0]!r}: the model has no such input (its inputs: {', '.join(names)})")
    generated = generated_inputs(manifest["inputs"], given, seed)
    feeds = dict(given, **generated)
    arrays = bind_inputs(input_specs(manifest["inputs"]), (), feeds)
    feeds = dict(zip(names, arrays))
    maps = _stage_maps(manifest, model.stages)
    if not any(m for _, m in maps):
        raise GraphoptError("this artifact has no kernel map (compiled before builds recorded one); recompile "
                            "the model with this graphopt to compare intermediates")
    graph = _oracle_graph(model)

    # the compiled program, each TVM stage traced, over one environment of named values
    env = dict(feeds)
    traced = []   # (kernel map entry, its captured arrays or None), in execution order
    for st, calls in maps:
        if isinstance(st, TvmStage):
            calls = calls or []
            t = trace_stage(st, calls, [env[k] for k in st.inputs])
            env.update(zip(st.outputs, t.outputs))
            ran = list(t.order) + [i for i in range(len(calls)) if i not in set(t.order)]
            traced += [(calls[i], t.arrays[i]) for i in ran]
        else:
            st.run(env)

    wanted = [w["value"] for c, _ in traced for group in c["outputs"] for w in group]
    oracle = _run_oracle(graph, wanted, feeds)
    nodes = {n.name: n for n in graph.nodes}

    def sources(nms) -> list:
        out = []
        for nm in nms:
            n = nodes.get(nm)
            out += list(n.provenance.sources) if n is not None and n.provenance is not None else [nm]
        return list(dict.fromkeys(out))

    checks = []
    for pos, (c, arrs) in enumerate(traced):
        knodes = list(dict.fromkeys([w["node"] for g in c["outputs"] for w in g] + [w["node"] for w in c.get("inside", ())]))
        for k, group in enumerate(c["outputs"]):
            whole = [w for w in group if not w.get("part")]
            parts = [w for w in group if w.get("part")]
            w = next((w for w in whole if w["value"] in oracle), whole[0] if whole else None)
            base = dict(position=pos, kernel=c["kernel"], output=k, value=w and w["value"], node=w and w["node"],
                        op=w and w.get("op"), nodes=knodes, sources=sources(knodes))
            if arrs is None:
                why = ("its kernel also runs inside control flow (If, Loop): its calls cannot be told apart"
                       if c.get("ambiguous") else "the call did not run as the map expected")
                checks.append(KernelCheck(**base, status="not-captured", note=why))
                continue
            if w is None and any(p.get("reshaped") and p["value"] in oracle for p in parts):
                w = next(p for p in parts if p.get("reshaped") and p["value"] in oracle)  # compared reshaped
                base.update(value=w["value"], node=w["node"], op=w.get("op"))
            if w is None and parts:
                p = parts[0]
                base.update(node=p["node"], op=p.get("op"))
                checks.append(KernelCheck(**base, status="no-oracle", reason="step",
                                          note=f"a step of node {p['node']}'s lowering ({p.get('op')}), "
                                               "no graph value of its own"))
                continue
            if w is None or w["value"] not in oracle:
                reason, why = (("unmapped", "the build could not follow this call to graph values") if w is None
                               else ("hidden", "the oracle cannot expose this value"))
                checks.append(KernelCheck(**base, status="no-oracle", reason=reason, note=why))
                continue
            a, e = arrs[k], oracle[w["value"]]
            note = ""
            if w.get("part") and a.size == e.size:
                a, note = a.reshape(e.shape), f"a step of node {w['node']}'s lowering, compared in %{w['value']}'s shape"
            r, t = _default_tolerance(e.dtype)
            r, t = (rtol if rtol is not None else r), (atol if atol is not None else t)
            if a.shape != e.shape:
                checks.append(KernelCheck(**base, status="diverges", rtol=r, atol=t, size=int(e.size),
                                          max_abs=float("inf"), max_rel=float("inf"), mismatched=int(e.size),
                                          note=f"shape {list(a.shape)}, the oracle's {list(e.shape)}"))
                continue
            bad, mabs, mrel = _errors(a, e, r, t)
            checks.append(KernelCheck(**base, status="diverges" if bad else "ok", max_abs=mabs, max_rel=mrel,
                                      mismatched=bad, size=int(e.size), rtol=r, atol=t, note=note))
    return IntermediatesReport(checks, generated=sorted(generated), seed=seed, rtol=rtol, atol=atol)
