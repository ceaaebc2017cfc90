"""If and Loop: Relax control flow over functions lowered from the subgraphs.

Each subgraph becomes a private Relax function of the same module, its body lowered by
`driver.emit_body`. Its parameters are the values it needs from outside, in this order:
the subgraph's own inputs (Loop), the enclosing values it reads (found by walking it,
nested subgraphs included), then the large constants its lowering turned into parameters,
which `SubCtx.param` passes up through every enclosing function to ``main``, where the
artifact stores them.

If: ``relax.If`` over calls to a then- and an else-function, so only the taken branch runs.

Loop: two mutually recursive functions, since Relax has no loop construct.
``loop(i, M, cond, carried.., scans.., captured..)`` returns its state when
``i < M and cond`` fails, else calls ``step`` with the same arguments; ``step`` runs the
body once, appends each scan output to its accumulator (shape ``(i, ...)``) and calls
``loop`` with ``i + 1``. The results come back with unknown shapes and are bound to the
IR's types with ``match_cast`` (checked at run time, so a wrong type is an error, never
garbage). Appending copies the accumulator: scan outputs cost O(trips^2) copies, fine for
the short loops ONNX exporters emit, not for long recurrences.
"""

from __future__ import annotations

from ...ir import Graph, Value
from .context import Ctx, SubCtx
from .driver import emit_body, free_values
from .helpers import safe_name, settle_shape, tvm_dtype
from .registry import register_lowering


def _ptype(sub: Ctx, v: Value, outer_expr=None):
    """The Relax type of a function parameter receiving ``v``: the IR type in the
    function's own symbols; the caller's rank with fresh dims when the IR has no rank."""
    from tvm import relax

    if v.type.shape is not None:
        return sub.sinfo(v)
    ty = getattr(outer_expr, "ty", None)
    nd = getattr(ty, "ndim", -1) if ty is not None else -1
    if nd is None or nd < 0:
        raise sub.parent.fail(f"value %{v.name} has unknown rank")
    return relax.TensorType([sub.sym(f"{safe_name(v.name)}_d{k}") for k in range(nd)], tvm_dtype(v.type.dtype))


def _captures(ctx: Ctx, sub: SubCtx, g: Graph) -> tuple[list[Value], list]:
    """The enclosing values ``g`` reads (constants excluded: the function embeds or routes
    them itself) and the parameters that receive them, bound in ``sub``."""
    from tvm import relax

    free = [v for v in free_values(g) if ctx.const_of(v) is None]
    params = []
    for v in free:
        var = relax.Var(safe_name(v.name), _ptype(sub, v, ctx.get(v)))
        sub.env[id(v)] = var
        params.append(var)
    return free, params


def _scalar_of(ctx: Ctx, e):
    """A rank-0 view of a one-element tensor (ONNX allows shape [1] for conditions)."""
    from tvm import relax

    ty = getattr(e, "ty", None)
    if isinstance(ty, relax.TensorType) and ty.ndim == 0:
        return e
    return ctx.bb.emit(relax.op.reshape(e, []))


def _branch(ctx: Ctx, g: Graph, fname: str):
    """``g`` as a private function; the call that runs it with the caller's values."""
    from tvm import relax

    sub = SubCtx(ctx, g)
    free, cap = _captures(ctx, sub, g)
    with ctx.bb.function(fname, private=True):
        outs = emit_body(sub, g)
        gv = ctx.bb.emit_func_output(outs[0] if len(outs) == 1 else relax.Tuple(outs), params=cap + sub.param_vars)
    return relax.Call(gv, [ctx.get(v) for v in free] + sub.routed)


@register_lowering("If")
def _if(ctx, n):
    from tvm import relax

    cond = _scalar_of(ctx, ctx.get(n.inputs[0]))
    then_g, else_g = n.attrs["then_branch"].value, n.attrs["else_branch"].value
    base = safe_name(n.name or "if")
    then_call = _branch(ctx, then_g, base + "_then")
    else_call = _branch(ctx, else_g, base + "_else")
    r = ctx.bb.emit(relax.If(cond, relax.SeqExpr([], then_call), relax.SeqExpr([], else_call)))
    outs = [r] if len(n.outputs) == 1 else [ctx.bb.emit(relax.TupleGetItem(r, k)) for k in range(len(n.outputs))]
    return [settle_shape(ctx, e, o) if o is not None else None for e, o in zip(outs, n.outputs)]


_INT64_MAX = 2 ** 63 - 1


def _static_dims(e) -> list:
    """Per dim of a relax tensor expression: its size when static, else None."""
    from tvm import relax

    ty = e.ty
    if not isinstance(ty.shape, relax.ShapeExpr):
        return [None] * ty.ndim
    return [int(d.value) if hasattr(d, "value") else None for d in ty.shape.values]


@register_lowering("Loop")
def _loop(ctx, n):
    from tvm import relax, tirx

    R = relax.op
    bb = ctx.bb
    body: Graph = n.attrs["body"].value
    n_carried = len(n.inputs) - 2
    n_scan = len(body.outputs) - 1 - n_carried
    base = safe_name(n.name or "loop")

    m = n.inputs[0] if len(n.inputs) > 0 else None
    c = n.inputs[1] if len(n.inputs) > 1 else None
    m_e = _scalar_of(ctx, ctx.get(m)) if m is not None else relax.const(_INT64_MAX, "int64")
    c_e = _scalar_of(ctx, ctx.get(c)) if c is not None else relax.const(True, "bool")
    init = [ctx.get(v) for v in n.inputs[2:]]

    # step(iter, trips, cond, carried.., scans.., captured.., routed..): the body once, then loop.
    sub = SubCtx(ctx, body)
    i_v = relax.Var("iter", relax.TensorType([], "int64"))
    m_v = relax.Var("trips", relax.TensorType([], "int64"))
    c_v = relax.Var("cond", relax.TensorType([], "bool"))
    carried_v = []
    for k in range(n_carried):
        bv, ov = body.inputs[2 + k], n.inputs[2 + k]
        carried_v.append(relax.Var(safe_name(bv.name), _ptype(sub, bv if bv.type.shape is not None else ov, init[k])))
    free, cap = _captures(ctx, sub, body)
    for bv, e in zip(body.inputs, [i_v, c_v] + carried_v):
        sub.env[id(bv)] = e
    with bb.function(base + "_step", private=True):
        for bv, e in zip(body.inputs[:2], [i_v, c_v]):  # body inputs typed [1] get a reshaped view
            if bv.type.shape is not None and list(bv.type.shape) != []:
                sub.env[id(bv)] = bb.emit(R.reshape(e, bv.type.shape))
        outs = emit_body(sub, body)
        scans = outs[1 + n_carried:]
        # An accumulator's dims past the first are the scan output's where static, else free
        # symbols; it starts as (0, ...) with 0 for the free ones, and the first iteration
        # replaces it rather than appending to it.
        elem = [_static_dims(e) for e in scans]
        acc_v = [relax.Var(f"scan{j}", relax.TensorType(
            [sub.sym(f"{base}_scan{j}_n")] + [d if d is not None else sub.sym(f"{base}_scan{j}_d{k}")
                                            for k, d in enumerate(dims)], scans[j].ty.dtype))
            for j, dims in enumerate(elem)]
        with bb.dataflow():
            nxt = [bb.emit_output(R.add(i_v, relax.const(1, "int64")))]
            nxt += [m_v, bb.emit_output(R.reshape(outs[0], [])) if outs[0].ty.ndim != 0 else outs[0]]
            nxt += list(outs[1:1 + n_carried])
            ones = [bb.emit_output(R.expand_dims(e, [0])) for e in scans]
            first = bb.emit_output(R.equal(i_v, relax.const(0, "int64"))) if scans else None
        for j in range(n_scan):
            # Appending needs the element's dims as the accumulator's symbols (checked at
            # run time), inside the branch: on the first iteration they do not match.
            acc_ty = acc_v[j].ty
            one = relax.Var(f"scan{j}_next", relax.TensorType([1] + list(acc_ty.shape.values[1:]), acc_ty.dtype))
            appended = relax.SeqExpr([relax.BindingBlock([relax.MatchCast(one, ones[j], one.ty)])],
                                     R.concat([acc_v[j], one], 0))
            nxt.append(bb.emit(relax.If(first, relax.SeqExpr([], ones[j]), appended)))
        state = carried_v + acc_v
        ret_ty = relax.TupleType([relax.TensorType(ndim=v.ty.ndim, dtype=v.ty.dtype) for v in state])
        step_params = [i_v, m_v, c_v] + state + cap + sub.param_vars

        def fresh(params):
            """Copies of ``params`` with their own shape symbols (a symbol belongs to one
            function)."""
            syms: dict = {}

            def dim(d):
                if isinstance(d, tirx.Var):
                    return syms.setdefault(d.name, tirx.Var(d.name, "int64"))
                return d

            return [relax.Var(p.name, relax.TensorType([dim(d) for d in p.ty.shape.values], p.ty.dtype)
                              if isinstance(p.ty, relax.TensorType) and isinstance(p.ty.shape, relax.ShapeExpr)
                              else p.ty) for p in params]

        # loop's placeholder, replaced below, so that step can call it.
        lp = fresh(step_params)
        gv_loop = bb.add_func(relax.Function(lp, relax.SeqExpr([], relax.Tuple(lp[3:3 + len(state)])), ret_ty),
                              base + "_loop")
        gv_step = bb.emit_func_output(bb.emit(relax.Call(gv_loop, nxt + cap + sub.param_vars)), params=step_params)

    # loop: the condition, then step or the final state. Built apart (it holds no kernels)
    # and swapped in for the placeholder.
    lb = relax.BlockBuilder()
    lp = fresh(step_params)
    with lb.function("loop", lp, private=True):
        with lb.dataflow():
            go = lb.emit_output(R.logical_and(R.less(lp[0], lp[1]), lp[2]))
        final = relax.SeqExpr([], relax.Tuple(lp[3:3 + len(state)]))
        lb.emit_func_output(lb.emit(relax.If(go, relax.SeqExpr([], relax.Call(gv_step, lp)), final)))
    bb.update_func(gv_loop, lb.get()["loop"])

    acc0 = [bb.emit(R.zeros(relax.ShapeExpr([0] + [d or 0 for d in dims]), e.ty.dtype)) for dims, e in zip(elem, scans)]
    args = [relax.const(0, "int64"), m_e, c_e] + init + acc0 + [ctx.get(v) for v in free] + sub.routed
    r = bb.emit(relax.Call(gv_loop, args))
    return [settle_shape(ctx, bb.emit(relax.TupleGetItem(r, k)), o) if o is not None else None
            for k, o in enumerate(n.outputs)]
