"""The build's kernel map: per kernel call of the built ``main``, in binding (= execution)
order, the graphopt values it outputs and those it computes inside.

    [{"kernel": "fused_matmul_add_relu", "view": false,
      "outputs": [[{"node": "relu", "op": "Relu", "output": 0, "value": "r"}]],
      "inside": [{"node": "mm", ...}, {"node": "add", ...}]}, ...]

An entry with ``"part": true`` is a step of that node's lowering (a MatMul's reshape to 2-D
and its dense kernel, the score matmul of an Attention): a var with no graph value of its
own, credited to the first graph value downstream of it (``value``), not equal to it;
``"reshaped": true`` where only reshapes lie between them (the same numbers in the value's
shape: a dense kernel's 2-D result).

The lowering names the relax var each graph value became (`Lowered.var_values`, by name
hint). TVM's passes keep the names of the bindings they leave alone, but FuseOps and
FuseTIR rename the bindings of the calls they create, so a call is followed through them by
what it computes rather than by name: a binding inside a fused function is the pre-fusion
binding with the same callee and the same arguments (the function's parameters read as the
call's arguments); FuseTIR then turns each fused function's call into one ``call_tir`` in
the same order. ``view``: a reshape that the VM build turns into ``vm.builtin.reshape``
(no kernel runs; the run-time trace meets it under that name).
"""

from __future__ import annotations

import re
from typing import Optional

__all__ = ["kernel_map"]

# The PrimFuncs LegalizeOps names for ops that only reshape (relax.reshape, squeeze, ...)
_RESHAPE = re.compile(r"^(reshape|squeeze|expand_dims|flatten)\d*$")


def _main_bindings(mod) -> list:
    """main's top-level bindings in order (those inside If branches are not followed)."""
    body = mod["main"].body
    return [b for blk in body.blocks for b in blk.bindings]


def _token(e, names: dict) -> object:
    """A hashable stand-in for an argument: the pre-fusion var name it resolves to (by the
    var object: names after FuseOps repeat), or a structural hash for constants and shapes."""
    import tvm_ffi
    from tvm import relax

    if isinstance(e, relax.Var):
        return ("var", names[e.id_]) if e.id_ in names else ("unknown", e.id_)
    if isinstance(e, relax.Tuple):
        return ("tuple",) + tuple(_token(f, names) for f in e.fields)
    return ("expr", tvm_ffi.structural_hash(e))


def _signature(value, names: dict) -> Optional[tuple]:
    """(callee, argument tokens) of a call binding's value; None for anything else."""
    from tvm import relax

    if isinstance(value, relax.TupleGetItem):
        return ("getitem", _token(value.tuple_value, names), int(value.index))
    if not isinstance(value, relax.Call):
        return None
    op = value.op
    callee = op.name_hint if hasattr(op, "name_hint") else getattr(op, "name", str(op))
    args = list(value.args)
    if callee == "relax.call_tir" and args:
        callee = "tir:" + args[0].name_hint
        args = args[1:2]
    return (callee,) + tuple(_token(a, names) for a in args)


def _callee(value) -> Optional[str]:
    """The kernel a binding calls: call_tir's PrimFunc, or the GlobalVar of a direct call."""
    from tvm import relax

    if not isinstance(value, relax.Call):
        return None
    op = value.op
    if getattr(op, "name", None) == "relax.call_tir":
        return value.args[0].name_hint
    if isinstance(op, relax.expr.GlobalVar):
        return op.name_hint
    return None


def kernel_map(before, fused, built, var_values: dict) -> list:
    """The kernel map (see the module's docstring) from main ``before`` FuseOps, after it
    (``fused``) and as scheduled for the build (``built``, after FuseTIR), with the
    lowering's ``var_values``. An output the map cannot follow is listed empty rather than
    guessed."""
    from tvm import relax

    # pre-fusion: the BlockBuilder named every var of main apart; aliases resolve to their root
    pre_names: dict = {p.id_: p.name for p in before["main"].params}
    by_sig: dict = {}
    for b in _main_bindings(before):
        if isinstance(b.value, relax.Var):
            pre_names[b.var.id_] = pre_names.get(b.value.id_, b.value.name)
            continue
        pre_names[b.var.id_] = b.var.name
        sig = _signature(b.value, pre_names)
        if sig is not None:
            by_sig.setdefault(sig, []).append(b.var.name)

    # post-FuseOps: per call binding, the pre-fusion vars it outputs (per output) and computes inside
    names: dict = {p.id_: q.name for p, q in zip(fused["main"].params, before["main"].params)}
    calls: list = []              # [[pre names] per output], [pre names inside], callee
    by_var: dict = {}
    taken: set = set()

    def lookup(sig) -> Optional[str]:
        hit = [h for h in by_sig.get(sig, []) if h not in taken] or by_sig.get(sig, [])
        if hit:
            taken.add(hit[0])
            return hit[0]
        return None

    made_before = _globals(before)   # graphopt's own Primitive functions: calls FuseOps leaves alone
    for b in _main_bindings(fused):
        v, vid = b.value, b.var.id_
        if vid in pre_names:   # a binding FuseOps left as it was (the same var: If, match_cast, ...)
            names[vid] = pre_names[vid]
        if isinstance(v, relax.Var):
            if v.id_ in names:
                names[vid] = names[v.id_]
            continue
        if isinstance(v, relax.TupleGetItem) and isinstance(v.tuple_value, relax.Var) and v.tuple_value.id_ in by_var:
            outs, k = by_var[v.tuple_value.id_][0], int(v.index)
            if k < len(outs):
                if not outs[k]:
                    hit = lookup(_signature(v, names))
                    outs[k] = [hit] if hit else []
                if outs[k]:
                    names[vid] = outs[k][0]
            continue
        if not isinstance(v, relax.Call):
            continue
        gv = v.op
        fn = fused[gv] if isinstance(gv, relax.expr.GlobalVar) and gv.name_hint not in made_before else None
        if isinstance(fn, relax.Function):  # a group FuseOps made
            outs, inside = _follow_group(fn, v, names, lookup)
        else:                               # a call FuseOps left as it was (graphopt's groups too)
            hit = lookup(_signature(v, names))
            if hit:
                names[vid] = hit
            n = _n_outputs(v)
            outs, inside = ([[hit] if hit else []] if n == 1 else [[] for _ in range(n)]), []
        c = [outs, inside, _callee(v)]
        calls.append(c)
        by_var[vid] = c
        if len(outs) == 1 and outs[0]:
            names[vid] = outs[0][0]

    owner = _owners(before, var_values)

    def values_of(name: str) -> list:
        return list(var_values.get(name, ()))

    def inside_of(name: str) -> list:
        # a var of no graph value of its own is a step of some node's lowering (a MatMul's
        # reshape to 2-D and its dense kernel): credited to that node, as a part
        return values_of(name) or ([dict(owner[name], part=True)] if name in owner else [])

    # as built (after FuseTIR): one call_tir per post-FuseOps call, in the same order, each
    # fused function's PrimFunc named after it
    views = _views(built)
    prims = _prim_names(built)
    nested = _nested_callees(built)
    out = []
    j = 0
    for pos, b in enumerate(_main_bindings(built)):
        kernel = _callee(b.value)
        if kernel is None or kernel not in prims:
            continue
        k = next((k for k in range(j, len(calls)) if calls[k][2] == kernel), None)
        outs, inside = ([], []) if k is None else (calls[k][0], calls[k][1])
        if k is not None:
            j = k + 1
        n_out = _n_outputs(b.value)
        if len(outs) != n_out:
            outs, inside = [[] for _ in range(n_out)], []
        out.append({"kernel": kernel, "view": pos in views,
                    # also called inside control flow (If branches, loop bodies): a run's
                    # calls of it cannot be told apart by name
                    "ambiguous": kernel in nested or (pos in views and "reshape" in nested),
                    "outputs": [[w for nm in group for w in inside_of(nm)] for group in outs],
                    "inside": _unique([w for nm in inside for w in inside_of(nm)])})
    return out


def _unique(ws: list) -> list:
    seen, out = set(), []
    for w in ws:
        key = (w["node"], w["value"], w.get("part", False))
        if key not in seen:
            seen.add(key)
            out.append(w)
    return out


def _owners(before, var_values: dict) -> dict:
    """Pre-fusion var name -> the graph value (an entry of ``var_values``) of the first
    valued var downstream of it, for each var that holds no graph value itself."""
    from tvm import relax

    consumers: dict = {}
    order = []
    reshape: set = set()    # vars bound to a reshape of their argument (or to another var)
    for b in _main_bindings(before):
        order.append(b.var.name)
        v = b.value
        if isinstance(v, relax.Var) or _RESHAPE.match(_callee(v) or ""):
            reshape.add(b.var.name)
        args = [v] if isinstance(v, relax.Var) else list(getattr(v, "args", ())) + (
            [v.tuple_value] if isinstance(v, relax.TupleGetItem) else [])
        flat = []
        for a in args:
            flat += list(a.fields) if isinstance(a, relax.Tuple) else [a]
        for a in flat:
            if isinstance(a, relax.Var):
                consumers.setdefault(a.name, []).append(b.var.name)
    owner: dict = {}
    for name in reversed(order):   # consumers come later: resolve them first
        if var_values.get(name):
            continue
        for c in consumers.get(name, ()):
            w = var_values.get(c, [None])[0] if var_values.get(c) else owner.get(c)
            if w is not None:
                owner[name] = {k: w[k] for k in ("node", "op", "value")}
                # the same numbers as that value in another shape: comparable, reshaped
                if c in reshape and (var_values.get(c) or w.get("reshaped")):
                    owner[name]["reshaped"] = True
                break
    return owner


def _nested_callees(mod) -> set:
    """Kernels called other than by main's top-level bindings: inside If branches, or by
    other relax functions (loop bodies); "reshape" stands for any view there."""
    from tvm import relax

    top = {b.var.id_ for b in _main_bindings(mod)}
    out: set = set()

    def visit(e, in_main_top: bool):
        if isinstance(e, relax.SeqExpr):
            for blk in e.blocks:
                for b in blk.bindings:
                    inner = in_main_top and b.var.id_ in top
                    if not inner:
                        k = _callee(b.value)
                        if k is not None:
                            out.add(k)
                        if isinstance(b.value, relax.Call) and _RESHAPE.match(k or ""):
                            out.add("reshape")
                    visit(b.value, False)
            visit(e.body, False)
        elif isinstance(e, relax.If):
            visit(e.true_branch, False)
            visit(e.false_branch, False)

    for gv, f in mod.functions.items():
        if isinstance(f, relax.Function) and (f.attrs is None or "Primitive" not in f.attrs):
            visit(f.body, gv.name_hint == "main")
    return out


def _globals(mod) -> set:
    return {g.name_hint for g in mod.get_global_vars()}


def _follow_group(fn, call, names: dict, lookup):
    """([[pre-fusion names] per output of ``fn``], [pre-fusion names inside]) for the call
    ``call`` of the fused function ``fn``: each binding inside is the pre-fusion binding that
    computes the same thing from the same (pre-fusion) arguments."""
    from tvm import relax

    local = dict(names)
    consts = {}
    for p, a in zip(fn.params, call.args):
        if isinstance(a, relax.Var):
            if a.id_ in names:
                local[p.id_] = names[a.id_]
        else:
            consts[p.id_] = a   # a constant argument FuseOps made a parameter
    found = []
    for blk in fn.body.blocks:
        for b in blk.bindings:
            v = b.value
            if isinstance(v, relax.Var):
                if v.id_ in local:
                    local[b.var.id_] = local[v.id_]
                continue
            if consts and isinstance(v, relax.Call):
                v = _substitute(v, consts)
            hit = lookup(_signature(v, local))
            if hit:
                local[b.var.id_] = hit
                found.append(hit)
    ret = fn.body.body
    rets = list(ret.fields) if isinstance(ret, relax.Tuple) else [ret]
    outs = [[local[r.id_]] if isinstance(r, relax.Var) and r.id_ in local else [] for r in rets]
    out_names = {nm for o in outs for nm in o}
    return outs, [nm for nm in found if nm not in out_names]


def _substitute(call, consts: dict):
    """``call`` with the fused function's constant parameters replaced by the constants."""
    from tvm import relax

    def sub(e):
        if isinstance(e, relax.Var) and e.id_ in consts:
            return consts[e.id_]
        if isinstance(e, relax.Tuple):
            return relax.Tuple([sub(f) for f in e.fields])
        return e

    return relax.Call(call.op, [sub(a) for a in call.args], call.attrs, call.ty_args)


def _prim_names(mod) -> set:
    from tvm import tirx

    return {gv.name_hint for gv, f in mod.functions.items() if isinstance(f, tirx.PrimFunc)}


def _n_outputs(value) -> int:
    from tvm import relax

    ty = value.ty
    return len(ty.fields) if isinstance(ty, relax.TupleType) else 1


def _views(mod) -> set:
    """Positions of main's call_tir bindings that the VM build turns into vm.builtin.reshape
    (RewriteDataflowReshape, which relax.build runs first thing after legalization; it
    rewrites values in place, binding for binding)."""
    from tvm import relax

    try:
        rewritten = relax.transform.RewriteDataflowReshape()(mod)
    except Exception:  # the build will say what is wrong; the map just knows no views
        return set()
    a, b = _main_bindings(mod), _main_bindings(rewritten)
    if len(a) != len(b):
        return set()
    return {i for i, (x, y) in enumerate(zip(a, b)) if _callee(x.value) is not None and _callee(y.value) is None}
