"""graphopt IR -> Relax IRModule: the function bodies, node by node through the registry.

``lower`` takes the graph as it is: the caller has run `graphopt.pipeline.lowering_pipeline`
first, so that nodes computable from constants are folded (weights must be concrete to
compile). Symbolic dims of the graph inputs become `tirx.Var`s shared by name, so a graph
with a free batch dim compiles once for every size. Large constants become parameters of
``main`` (after its inputs), returned with the module, so that an artifact stores them
beside the library.

A function body is lowered in segments (`emit_body`): runs of ordinary nodes go into
dataflow blocks (where TVM fuses them), and each control-flow node (If/Loop, registry
trait ``control_flow``) sits between them in a plain binding block, because Relax allows
control flow only there. A value a later segment reads leaves its dataflow block as an
output.

A graphopt fused group (a node holding a subgraph) becomes one Relax function marked
``Primitive`` that TVM compiles as one kernel; so does a named fused op (graphopt.RMSNorm)
without a lowering of its own, from its reference decomposition.

A lowering that raises LoweringError refuses its node: zeros stand in for its outputs and
lowering goes on, so that `LoweringRefusedError` lists every refused node at once. Any
other exception from a lowering is a bug (InternalError naming the node).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ...errors import GraphoptError, InternalError, UnsupportedOpError
from ...ir import DType, Graph, Node, Value, is_fused_group
from ...ops import decompose, get_schema, has_decomposition
from .context import Ctx, SubCtx
from .errors import LoweringError, LoweringRefusedError
from .helpers import rx, safe_name, settle_shape, tvm_dtype
from .registry import lowering_for, unsupported_nodes


@dataclass
class Lowered:
    """The result of lowering a graph."""

    mod: object                      # tvm.IRModule with a relax function "main"
    input_names: list[str]
    output_names: list[str]
    params: list[np.ndarray]         # the values of main's parameters after its inputs
    param_names: list[str]
    notes: list[str] = field(default_factory=list)
    # main's relax var names -> the graph values they hold (Ctx.var_values): what the
    # build's kernel map (codegen.kernel_map) names each kernel call's outputs by
    var_values: dict = field(default_factory=dict)


def lower(graph: Graph, *, name: str = "main", fallback_nodes: Optional[set] = None, target="cpu") -> Lowered:
    """Lower ``graph`` (as it is: no passes run here) to a Relax IRModule for ``target``
    (a `codegen.target.Target` or a target name). Raises UnsupportedOpError listing every
    node (with its op) that has no lowering, or LoweringRefusedError listing every node
    whose lowering refused it, all at once."""
    from tvm import relax

    from ..target import as_target

    kind = as_target(target).kind
    bad = [(op, nm) for op, nm in unsupported_nodes(graph, kind) if not (fallback_nodes and nm in fallback_nodes)]
    if bad:
        raise UnsupportedOpError(bad, f"graph {graph.name!r}")
    ctx = Ctx(graph, {}, kind)
    ctx.refused = []
    in_vars = []
    for v in graph.inputs:
        var = relax.Var(safe_name(v.name), ctx.sinfo(v))
        ctx.env[id(v)] = var
        in_vars.append(var)
    bb = ctx.bb
    try:
        with bb.function(name):  # parameters (inputs, then weights) are given at the end
            outs = emit_body(ctx, graph, fresh_outputs=True)
            result = outs[0] if len(outs) == 1 else relax.Tuple(outs)
            bb.emit_func_output(result, params=in_vars + ctx.param_vars)
    except BaseException:
        _close_blocks(bb)
        raise
    if ctx.refused:
        raise LoweringRefusedError(ctx.refused, f"graph {graph.name!r}")
    mod = bb.get()
    return Lowered(mod, [v.name for v in graph.inputs], [o.name for o in graph.outputs], ctx.param_vals,
                   ctx.param_names, var_values=ctx.var_values)


def _close_blocks(bb) -> None:
    """End the blocks a failed lowering left open: TVM prints "BlockBuilder destroyed with
    remaining blocks!" on the terminal otherwise, whenever the builder is freed."""
    for _ in range(256):
        try:
            bb._end_block()
        except Exception:
            return


def is_control_flow(n: Node) -> bool:
    """Whether ``n`` runs subgraphs as control flow (If, Loop: the registry's trait)."""
    schema = get_schema(n.op_type, n.domain)
    return schema is not None and schema.traits.control_flow


def lower_node(ctx: Ctx, n: Node) -> None:
    """Lower one node into ``ctx`` (its outputs' expressions go into ``ctx.env``)."""
    fn = lowering_for(n, ctx.target_kind)
    if fn is None:
        if is_fused_group(n):
            fn = lower_fused_group
        elif has_decomposition(n):
            fn = lower_decomposed
        else:
            raise UnsupportedOpError([(n.qualified_op, n.name)])
    try:
        res = fn(ctx, n)
    except LoweringError as e:  # a case the lowering knowingly refuses
        res = _refuse(ctx, n, e)
    except (GraphoptError, InternalError):
        raise
    except Exception as e:
        # Anything else is a bug, not a refusal: --fallback ort must not paper over it, and
        # the conformance runner counts it as a crash.
        raise InternalError(f"lowering of node {n.name!r} ({n.qualified_op})", e) from e
    if not isinstance(res, (list, tuple)):
        res = [res]
    for i, o in enumerate(n.outputs):
        if o is None:
            continue
        if i >= len(res) or res[i] is None:
            raise ctx.fail(f"output {i} (%{o.name}) is not supported")
        e = res[i]
        ty = getattr(e, "ty", None)
        if isinstance(ty, ctx.relax.TensorType) and ty.shape is None and ty.ndim >= 0:
            # Relax lost the shape (it could not prove dims of different names equal): bind
            # it to the IR's type, checked at run time, so that later ops see a shape.
            e = settle_shape(ctx, e, o)
        _check_shape(ctx, o, e)
        ctx.env[id(o)] = e
        ctx.record(n, i, o, e)


def _refuse(ctx: Ctx, n: Node, e: LoweringError) -> list:
    """Record a refused node and stand zeros of its IR types in for its outputs, so that
    lowering goes on and finds every other refusal (lower() then fails listing all).
    Fails at once where that cannot be done: not collecting, an output of unknown rank,
    or a control-flow node (its functions may be half-built)."""
    if ctx.refused is None or is_control_flow(n) or any(
            o is not None and o.type.shape is None for o in n.outputs):
        raise e
    ctx.refused.append((n.qualified_op, n.name, str(e)))
    return [None if o is None else ctx.emit(rx().op.zeros(ctx.shape_of(o), tvm_dtype(o.type.dtype)))
            for o in n.outputs]


def _check_shape(ctx: Ctx, o: Value, e) -> None:
    """The lowered value must have the IR's static shape and dtype (a cheap guard against
    semantic differences between ONNX and relax ops)."""
    from tvm import relax

    si = getattr(e, "ty", None)
    if si is None or not isinstance(si, relax.TensorType):
        return
    want_dt = tvm_dtype(o.type.dtype)
    if str(si.dtype) != want_dt:
        raise ctx.fail(f"lowered output %{o.name} has dtype {si.dtype}, expected {want_dt}")
    if si.shape is None or o.type.shape is None or not isinstance(si.shape, relax.ShapeExpr):
        return
    got = list(si.shape.values)
    if len(got) != len(o.type.shape):
        raise ctx.fail(f"lowered output %{o.name} has rank {len(got)}, expected {len(o.type.shape)}")
    for g, w in zip(got, o.type.shape):
        if isinstance(w, int) and hasattr(g, "value") and int(g.value) != w:
            raise ctx.fail(f"lowered output %{o.name} has shape {[str(x) for x in got]}, expected {list(o.type.shape)}")


# --------------------------------------------------------------------------- function bodies
def _reads(n: Node):
    """The values ``n`` reads, with those its subgraphs read from enclosing scopes."""
    for v in n.inputs:
        if v is not None:
            yield v
    for sg in n.subgraphs():
        yield from free_values(sg)


def free_values(graph: Graph) -> list[Value]:
    """Values read inside ``graph`` (nested subgraphs included) but defined outside it,
    in first-use order."""
    defined: set[int] = set()
    used: dict[int, Value] = {}

    def visit(g: Graph) -> None:
        defined.update(id(v) for v in g.inputs)
        defined.update(id(v) for v in g.constants)
        for n in g.nodes:
            for v in n.inputs:
                if v is not None:
                    used.setdefault(id(v), v)
            for sg in n.subgraphs():
                visit(sg)
            defined.update(id(o) for o in n.outputs if o is not None)
        for o in g.outputs:
            used.setdefault(id(o), o)

    visit(graph)
    return [v for k, v in used.items() if k not in defined]


def emit_body(ctx: Ctx, graph: Graph, *, fresh_outputs: bool = False) -> list:
    """Lower ``graph``'s nodes into the function ``ctx.bb`` is building; returns the
    expressions of its outputs, all usable outside dataflow blocks. ``fresh_outputs``
    copies outputs that are not computed here (inputs, parameters, constants), so that a
    caller of ``main`` never receives a tensor it passed in or a weight."""
    from tvm import relax

    bb = ctx.bb
    nodes = list(graph.nodes)
    last_read: dict[int, int] = {}
    for i, n in enumerate(nodes):
        for v in _reads(n):
            last_read[id(v)] = i
    for o in graph.outputs:
        last_read[id(o)] = len(nodes)
    i = 0
    while i < len(nodes):
        if is_control_flow(nodes[i]):
            ctx.node = nodes[i]
            lower_node(ctx, nodes[i])
            i += 1
            continue
        j = i
        while j < len(nodes) and not is_control_flow(nodes[j]):
            j += 1
        with bb.dataflow():
            for k in range(i, j):
                ctx.node, ctx.segment = nodes[k], (nodes, last_read, i, k)
                lower_node(ctx, nodes[k])
            ctx.node = ctx.segment = None
            for n in nodes[i:j]:
                for o in n.outputs:
                    if o is not None and last_read.get(id(o), -1) >= j:
                        e = ctx.env[id(o)]
                        if isinstance(e, relax.DataflowVar):
                            ctx.env[id(o)] = bb.emit_output(e)
        i = j
    ctx.node = None
    outs = [ctx.get(o) for o in graph.outputs]
    passed_in = [ctx.env[id(v)] for v in graph.inputs if id(v) in ctx.env] + list(ctx.param_vars)
    stale = [k for k, e in enumerate(outs)
             if not isinstance(e, relax.Var) or any(e.same_as(p) for p in passed_in)]
    if fresh_outputs and stale:
        with bb.dataflow():
            for k in stale:
                o, e = graph.outputs[k], outs[k]
                if o.type.dtype is DType.BOOL:
                    copy = relax.op.logical_and(e, relax.const(True, "bool"))
                else:
                    copy = relax.op.add(e, relax.const(0, tvm_dtype(o.type.dtype)))
                outs[k] = bb.emit_output(bb.emit(copy))
    return outs


# --------------------------------------------------------------------------- fused groups
def lower_decomposed(ctx, n):
    """A named fused op without its own lowering: its reference decomposition, as one
    kernel (a fused group's function); inside a fused group's function, in place (FuseTIR
    takes no call of one Primitive function from another)."""
    body = decompose(n)
    if not getattr(ctx, "primitive", False):
        return lower_fused_group(ctx, n, body)
    for v, outer in zip(body.inputs, n.inputs):
        ctx.env[id(v)] = ctx.get(outer)
    for inner in body.nodes:
        ctx.node = inner
        lower_node(ctx, inner)
    ctx.node = n
    return [ctx.get(o) for o in body.outputs]


def lower_fused_group(ctx, n, sub: Optional[Graph] = None):
    """A graphopt fused group: its subgraph (or ``sub``) becomes one Relax function marked
    Primitive (TVM compiles it as one kernel), called from main. It is built nested in
    main's builder, so that the kernels emitted inside are named apart from main's; large
    constants inside become parameters passed down from main."""
    from tvm import relax

    sub = sub if sub is not None else n.subgraphs()[0]
    sub_ctx = SubCtx(ctx, sub)
    sub_ctx.primitive = True  # lower_decomposed lowers named fused ops in place here
    inner_in = [relax.Var(safe_name(v.name), sub_ctx.sinfo(v)) for v in sub.inputs]
    for v, var in zip(sub.inputs, inner_in):
        sub_ctx.env[id(v)] = var
    bb = ctx.bb
    with bb.function("fused_" + safe_name(n.name), attrs={"Primitive": 1}, private=True):
        with bb.dataflow():
            for inner in sub.nodes:
                sub_ctx.node = inner
                lower_node(sub_ctx, inner)
            outs = [bb.emit_output(sub_ctx.get(o)) for o in sub.outputs]
        consts, lifted = _lift_constants(bb)
        gv = bb.emit_func_output(outs[0] if len(outs) == 1 else relax.Tuple(outs),
                                 params=inner_in + sub_ctx.param_vars + lifted)
    call = ctx.emit(relax.Call(gv, [ctx.get(v) for v in n.inputs] + sub_ctx.routed + consts))
    if len(sub.outputs) == 1:
        return [call]
    return [ctx.emit(relax.TupleGetItem(call, i)) for i in range(len(sub.outputs))]


def _lift_constants(bb) -> tuple[list, list]:
    """Turn the tensor constants in the blocks of the function ``bb`` is building (small
    weights `Ctx.array` embeds, the lowerings' scalars) into parameters; returns (the
    constants, for the caller to pass; the parameters). FuseTIR refuses a constant inside
    a Primitive function ("Tensor constants are not supported in primitive functions");
    FuseOps lifts those of the functions it makes the same way."""
    import tvm_ffi
    from tvm import relax
    from tvm.ir import GenericConst

    consts: list = []
    params: list = []

    def lift(c):
        for k, seen in enumerate(consts):
            if seen.same_as(c):
                return params[k]
        consts.append(c)
        params.append(relax.Var(f"c{len(consts) - 1}", c.ty))
        return params[-1]

    bb._func._blocks = [tvm_ffi.structural_map(b, [(GenericConst, lift)]) for b in bb._func._blocks]
    return consts, params
