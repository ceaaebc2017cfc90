"""Constant folding: evaluate every subgraph whose inputs are all constant, and replace the
values it hands to the rest of the graph by constants.

What folds: any deterministic standard-domain node whose inputs are all constants or
folded values, plus ``Shape`` and ``Size`` of a value whose shape is static (seeds, computed
from the type), and ``Gather(Shape(x), indices)`` picking dims of x that are static while
others are not (a partly bound shape). Nodes holding subgraphs, the Random* family,
Bernoulli, Multinomial and Dropout never fold (simplify removes inference Dropout), nor the
DequantizeLinear of a quantized matmul weight (`graphopt.ops.weight_quant`: folded, the
weight would be float32 again).

How: the folded subgraph is exported as one ONNX model (its constant inputs as
initializers) and run on onnxruntime with graph optimizations off and one thread: the
same kernels, the same way, as the oracle. So folding is exact for every dtype: integer
and bool ops stay integer, nothing goes through float64. Where that model cannot run, each
node is tried on its own, and a node onnxruntime refuses stays unfolded (and says why
under ``--explain``). Integer Div and Mod by a constant holding a zero never fold.

Size limit: a value handed to the rest of the graph ("materialized") folds only when it has
at most ``max_elements`` elements; a larger intermediate value is fine when its consumers
are folded too and shrink it (e.g. a big ConstantOfShape reduced to a scalar), up to
``max_eval_elements`` for anything evaluated at all. So folding never blows up the model.
A node whose type leaves its output size open (a Range to a computed limit) is evaluated
only once its inputs are constants and the registry knows that size from their values, so
the limit holds for it too, and a tiny model cannot make folding allocate gigabytes.

After each round of folding, the types of the whole graph are re-inferred
(`graphopt.ops.refine_types`): a folded shape makes the outputs it sizes static.

Each folded value is one rewrite application (``fold-constants.fold``); the new constant
takes the name of the value it replaces (graph outputs keep their names).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from graphopt.ir import DType, Graph, Node, Provenance, TensorData, Value
from graphopt.ops import get_schema, refine_types
from graphopt.ops.weight_quant import keeps_quantized
from graphopt.pipeline.base import Pass, PassContext, all_graphs, register_pass
from graphopt.rewrite import erase_dead
from graphopt.frontend.reference import evaluate_model

RULE = "fold-constants.fold"


def _shape_seed(node: Node) -> Optional[np.ndarray]:
    """The value of Shape/Size of an input whose (sliced) shape is static, from its type."""
    x = node.inputs[0] if node.inputs else None
    if x is None or x.type.shape is None:
        return None
    shape = list(x.type.shape)
    if node.op_type == "Size":
        return np.array(int(np.prod(shape, dtype=np.int64)), dtype=np.int64) if x.type.is_static else None
    r = len(shape)
    start = node.attr("start", 0)
    end = node.attr("end", r)
    start = min(max(start + r if start < 0 else start, 0), r)
    end = min(max(end + r if end < 0 else end, 0), r)
    part = shape[start:end]
    return np.array(part, dtype=np.int64) if all(isinstance(d, int) for d in part) else None


def _gathered_dims(node: Node) -> Optional[np.ndarray]:
    """Gather(Shape(x), idx) where the dims it picks are static though x's shape is not
    (a batch left symbolic while the sequence length is bound): their values."""
    data, idx = (node.inputs + (None, None))[:2]
    p = data.producer if data is not None else None
    if p is None or p.op_type != "Shape" or p.domain or node.attr("axis", 0) != 0:
        return None
    if idx is None or not idx.is_constant or idx.const.is_elided:
        return None
    x = p.inputs[0]
    if x is None or x.type.shape is None:
        return None
    r = len(x.type.shape)
    start = p.attr("start", 0)
    end = p.attr("end", r)
    start = min(max(start + r if start < 0 else start, 0), r)
    end = min(max(end + r if end < 0 else end, 0), r)
    dims = list(x.type.shape[start:end])
    i = idx.const.numpy().astype(np.int64)
    if i.size and (i.min() < -len(dims) or i.max() >= len(dims)):
        return None  # out of range: left for onnxruntime to refuse
    picked = np.asarray(np.asarray(dims, dtype=object)[i] if dims else np.zeros(i.shape), dtype=object)
    if any(not isinstance(d, int) for d in picked.reshape(-1)):
        return None
    return picked.astype(np.int64)


@register_pass
@dataclass
class FoldConstants(Pass):
    name = "fold-constants"
    summary = "evaluate subgraphs whose inputs are all constant (on onnxruntime, exactly like the oracle), within a size limit"

    max_elements: int = 1 << 24       # largest constant a fold may create
    max_eval_elements: int = 1 << 26  # largest intermediate value evaluated at all

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        changed = False
        for g in list(all_graphs(graph)):
            # Rounds: a fold can make a value constant that an integer Div/Mod refused to
            # fold as long as its divisor was not known to hold no zero.
            for _ in range(8):
                if not self._fold(graph, g, ctx):
                    break
                changed = True
                # A constant where a shape was computed (a Reshape's target, an Expand's
                # shape) lets inference give sizes where the stored types still hold the
                # symbols it had to make up: keep them, so that what reads those values
                # folds in the next round and lowers with static shapes.
                refine_types(graph, strict=False)
        return changed

    # ------------------------------------------------------------------------------ planning
    def _plan(self, g: Graph, ctx: PassContext):
        folded: dict[int, Node] = {}     # id(node) -> node, in order
        seeds: dict[int, np.ndarray] = {}  # id(value) -> data of Shape/Size seeds
        produced: set[int] = set()       # ids of values produced by folded nodes
        for node in g.nodes:
            site = f"{node.name} ({node.qualified_op})"
            # A Gather of a Shape that folds as a whole folds like any node below.
            gather_seed = node.op_type == "Gather" and not (node.inputs[0] is not None and id(node.inputs[0]) in produced)
            if (node.op_type in ("Shape", "Size") or gather_seed) and not node.domain:
                arr = _gathered_dims(node) if node.op_type == "Gather" else _shape_seed(node)
                if arr is not None:
                    folded[id(node)] = node
                    seeds[id(node.output)] = arr
                    produced.add(id(node.output))
                    continue
            known, why = [], None
            for i, v in enumerate(node.inputs):
                if v is None:
                    continue
                if id(v) in produced:
                    known.append(i)
                elif v.is_constant:
                    if v.const.is_elided:
                        why = f"input {i} %{v.name} is an elided constant (its data is unknown)"
                    else:
                        known.append(i)
                elif why is None:
                    why = f"input {i} %{v.name} is not constant"
            if why is None:
                why = self._refuse(node) or self._size_unknown(node, produced)
            if why is not None:
                if known:
                    ctx.explain_failed(RULE, site, why)
                continue
            folded[id(node)] = node
            for o in node.outputs:
                if o is not None:
                    produced.add(id(o))
        # Materialize only what the rest of the graph reads; drop producers over the limit.
        while True:
            mats = self._materialized(g, folded)
            big = [v for v in mats if v.type.is_static and v.type.numel() > self.max_elements]
            if not big:
                break
            for v in big:
                p = v.producer
                ctx.explain_failed(RULE, f"{p.name} ({p.qualified_op})",
                                   f"%{v.name} would have {v.type.numel()} elements, over the limit {self.max_elements}")
                folded.pop(id(p), None)
                for o in p.outputs:
                    if o is not None:
                        seeds.pop(id(o), None)
        # Keep only nodes upstream of a materialized value (others are dead code: dce's job).
        needed: set[int] = set()
        stack = [v.producer for v in mats]
        while stack:
            n = stack.pop()
            if id(n) in needed or id(n) not in folded:
                continue
            needed.add(id(n))
            if any(id(o) in seeds for o in n.outputs if o is not None):
                continue
            stack.extend(v.producer for v in n.inputs if v is not None and v.producer is not None)
        nodes = [n for n in g.nodes if id(n) in needed]
        return nodes, mats, seeds

    def _refuse(self, node: Node) -> Optional[str]:
        if node.domain:
            return f"op {node.qualified_op} is not a standard ONNX op"
        schema = get_schema(node.op_type, node.domain)
        if schema is None:  # the random ops among them: graphopt imports none of them
            return f"op {node.op_type} is not in the registry"
        if not schema.traits.deterministic:  # the registry's trait
            return f"{node.op_type} is not deterministic" if node.op_type != "Dropout" else "Dropout is left to simplify"
        if node.subgraphs():
            return "the node holds subgraphs"
        if node.op_type == "DequantizeLinear" and keeps_quantized(node):
            return "a quantized weight stays quantized (the matmul reading it dequantizes in its kernel)"
        for o in node.outputs:
            if o is None:
                continue
            if o.type.is_static and o.type.numel() > self.max_eval_elements:
                return f"output %{o.name} would have {o.type.numel()} elements, over the evaluation limit {self.max_eval_elements}"
        if node.op_type in ("Div", "Mod") and len(node.inputs) == 2:
            d = node.inputs[1]
            if d is not None and d.type.dtype.is_int and d.is_constant and not d.const.is_elided:
                if np.any(d.const.numpy() == 0):
                    return "integer division by zero"
            elif d is not None and d.type.dtype.is_int:
                return "the divisor is computed: it may hold a zero"
        return None

    def _size_unknown(self, node: Node, produced: set[int]) -> Optional[str]:
        """Why a node whose output size its type does not say may not be evaluated now.

        Such a size follows from input values (Range's limit, Tile's repeats, an Expand
        shape computed from constants): a tiny model can ask for terabytes. The node waits
        until every input is a constant, when the registry computes its output shape from
        their values, and is held to the evaluation limit like any other."""
        if all(o is None or o.type.is_static for o in node.outputs):
            return None
        if any(v is not None and id(v) in produced for v in node.inputs):
            return "its output size depends on values folded in this round (it is tried again once they are constants)"
        from graphopt.ops import InferError, infer_node

        try:
            types = infer_node(node)
        except InferError as e:
            return f"the registry refuses it: {e}"
        for o, t in zip(node.outputs, types):
            if o is not None and t is not None and t.is_static and t.numel() > self.max_eval_elements:
                return (f"output %{o.name} would have {t.numel()} elements, over the evaluation limit "
                        f"{self.max_eval_elements}")
        return None

    @staticmethod
    def _materialized(g: Graph, folded: dict[int, Node]) -> list[Value]:
        out = []
        for n in g.nodes:
            if id(n) not in folded:
                continue
            for o in n.outputs:
                if o is None:
                    continue
                if o.is_graph_output() or any(id(u.node) not in folded for u in o.uses()):
                    out.append(o)
        return out

    # ------------------------------------------------------------------------------ evaluation
    def _evaluate(self, g: Graph, nodes: list[Node], mats: list[Value], seeds: dict[int, np.ndarray],
                  ctx: PassContext) -> dict[int, np.ndarray]:
        wanted = [v for v in mats if id(v) not in seeds]
        results: dict[int, np.ndarray] = {k: a for k, a in seeds.items()}
        if not wanted:
            return results
        run_nodes = [n for n in nodes if not any(id(o) in seeds for o in n.outputs if o is not None)]
        try:
            arrays = self._run(g, run_nodes, wanted, seeds)
            for v, a in zip(wanted, arrays):
                results[id(v)] = a
            return results
        except Exception:
            pass
        # One node at a time: skip (and explain) the nodes onnxruntime refuses.
        values: dict[int, np.ndarray] = dict(seeds)
        for n in run_nodes:
            ins = [v for v in n.inputs if v is not None and not v.is_constant]
            if any(id(v) not in values for v in ins):
                continue
            outs = [o for o in n.outputs if o is not None]
            try:
                arrays = self._run(g, [n], outs, {id(v): values[id(v)] for v in ins}, inputs_from=ins)
            except Exception as e:
                msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                ctx.explain_failed(RULE, f"{n.name} ({n.qualified_op})", f"onnxruntime cannot evaluate it: {msg[:200]}")
                continue
            for o, a in zip(outs, arrays):
                values[id(o)] = a
        for v in wanted:
            if id(v) in values:
                results[id(v)] = values[id(v)]
        return results

    def _run(self, g: Graph, nodes: list[Node], outputs: list[Value], seeds: dict[int, np.ndarray],
             inputs_from: Optional[list[Value]] = None) -> list[np.ndarray]:
        from graphopt.frontend.onnx_export import export_onnx

        sub = Graph("fold", dict(g.root.opset_imports) or {"": 21})
        seen: set[str] = set()
        seed_values = {id(v): v for n in nodes for v in n.inputs if v is not None and id(v) in seeds}
        for v in list(inputs_from or []) + list(seed_values.values()):
            if v.name not in seen and id(v) in seeds:
                sub.add_constant(v.name, TensorData(seeds[id(v)], v.type.dtype))
                seen.add(v.name)
        for n in nodes:
            for v in n.inputs:
                if v is not None and v.is_constant and v.name not in seen:
                    sub.add_constant(v.name, v.const)
                    seen.add(v.name)
            sub.add_node(n.op_type, [None if v is None else sub.lookup(v.name) for v in n.inputs],
                         [None if o is None else o.type for o in n.outputs], dict(n.attrs), name=n.name,
                         domain=n.domain, output_names=[None if o is None else o.name for o in n.outputs])
        sub.set_outputs([sub.lookup(v.name) for v in outputs])
        # The oracle's own choice of reference per op: exact int32 numpy for the integer
        # matmul/conv ops, whose onnxruntime kernels saturate on AVX2 CPUs.
        return evaluate_model(export_onnx(sub), {})

    # ------------------------------------------------------------------------------ rewriting
    def _fold(self, root: Graph, g: Graph, ctx: PassContext) -> bool:
        nodes, mats, seeds = self._plan(g, ctx)
        if not mats:
            return False
        results = self._evaluate(g, nodes, mats, seeds, ctx)
        applied = False
        renames: list[tuple[Value, str]] = []
        for v in mats:
            a = results.get(id(v))
            p = v.producer
            site = f"{p.name} ({p.qualified_op})"
            if a is None:
                continue
            data, why = self._data(v, a)
            if why:
                ctx.explain_failed(RULE, site, why)
                continue
            if ctx.limit_reached:
                ctx.refused += 1
                ctx.explain_failed(RULE, site, "the bisect limit was reached")
                continue
            ctx.allow(RULE, [p], lambda: f"%{v.name}: {v.type} = {p.qualified_op}(...) @{p.name} -> constant {data.type}")
            c = g.add_constant(g.fresh_name(v.name), data, provenance=Provenance(RULE, (p.name,)))
            root.replace_all_uses(v, c)
            renames.append((c, v.name))
            ctx.explain_applied(RULE, site)
            applied = True
        if not applied:
            return False
        erase_dead(root, list(reversed(nodes)))
        for c, name in renames:
            if c.name != name and g.lookup(name) is None:
                root.rename_value(c, name)
        return True

    def _data(self, v: Value, a: np.ndarray):
        t = v.type
        if a.size > self.max_elements:
            return None, f"%{v.name} has {a.size} elements, over the limit {self.max_elements}"
        if t.dtype is DType.STRING:
            data = TensorData(np.asarray(a, dtype=object), DType.STRING)
        elif t.dtype is DType.BFLOAT16:
            return None, "bf16 results are not folded"
        else:
            if a.dtype != t.dtype.numpy:
                return None, f"onnxruntime returned {a.dtype} for a {t.dtype.short} value"
            data = TensorData(a if a.flags.c_contiguous else a.copy(order="C"), t.dtype)  # (ascontiguousarray makes 0-d 1-d)
        if t.shape is not None:
            if len(t.shape) != a.ndim or any(isinstance(d, int) and d != s for d, s in zip(t.shape, a.shape)):
                return None, f"onnxruntime returned shape {list(a.shape)} for {t}"
        return data, None
