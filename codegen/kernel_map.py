"""The build's kernel map: per kernel call of the built ``main``, in binding (= execution)
order, the graphopt values it outputs and those it computes inside.

    [{"kernel": "fused_matmul_add_relu", "view": false,
      "outputs": [[{"node": "relu", "op": "Relu", "output": 0, "value": "r"}]],
      "inside": [{"node": "mm", ...}, {"node": "add", ...}]}, ...]

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

from typing import Optional

__all__ = ["kernel_map"]


def _main_bindings(mod) -> list:
    """main's top-level bindings in order (those inside If branches are not followed)."""
    body = mod["main"].body
    return [b for blk in body.blocks for b in blk.bindings]


def _token(e, names: dict) -> object:
    """A hashable stand-in for an argument: the (pre-fusion) var name it resolves to, or a
    structural hash for constants and shapes."""
    import tvm_ffi
    from tvm import relax

    if isinstance(e, relax.Var):
        return ("var", names.get(e.name, e.name))
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
    lowering's ``var_values``. Calls that cannot be followed are listed with empty
    ``outputs`` rather than guessed."""
    from tvm import relax

    # pre-fusion: signature -> var names (a duplicate computation may share a signature)
    pre = _main_bindings(before)
    alias = {b.var.name: b.value.name for b in pre if isinstance(b.value, relax.Var)}

    def root(n: str) -> str:
        seen = set()
        while n in alias and n not in seen:
            seen.add(n)
            n = alias[n]
        return n

    ident = {}
    by_sig: dict = {}
    for b in pre:
        sig = _signature(b.value, ident)
        if sig is not None:
            by_sig.setdefault(sig, []).append(b.var.name)

    def values_of(name: str) -> list:
        return list(var_values.get(name, ())) + (list(var_values.get(root(name), ())) if root(name) != name else [])

    # post-FuseOps: each call binding -> the pre-fusion vars it outputs (per output) and
    # computes inside
    post = _main_bindings(fused)
    names: dict[str, str] = {}    # post-FuseOps var name -> pre-fusion var name
    calls: list = []              # [post var name, [[pre names] per output], [pre names inside]]
    by_var: dict = {}
    for b in post:
        v, var = b.value, b.var.name
        if isinstance(v, relax.Var):
            names[var] = names.get(v.name, v.name)
            continue
        if isinstance(v, relax.TupleGetItem) and isinstance(v.tuple_value, relax.Var) \
                and v.tuple_value.name in by_var:
            c, k = by_var[v.tuple_value.name], int(v.index)
            if k < len(c[1]):
                if not c[1][k]:
                    sig = _signature(v, names)
                    hit = by_sig.get(sig, [])
                    c[1][k] = [hit[0] if hit else var]
                names[var] = c[1][k][0]
            continue
        gv = v.op if isinstance(v, relax.Call) else None
        fn = fused[gv] if isinstance(gv, relax.expr.GlobalVar) and gv in fused.get_global_vars() else None
        if isinstance(fn, relax.Function) and fn.attrs is not None and "Primitive" in fn.attrs \
                and not _is_graphopt_group(before, gv):
            outs, inside = _follow_group(fn, v, names, by_sig)
        elif isinstance(v, relax.Call):
            hit = by_sig.get(_signature(v, names), [])
            n = _n_outputs(v)
            outs, inside = ([[hit[0] if hit else var]] if n == 1 else [[] for _ in range(n)]), []
        else:
            continue
        c = [var, outs, inside, _callee(v)]
        calls.append(c)
        by_var[var] = c
        if len(outs) == 1 and outs[0]:
            names[var] = outs[0][0]
    # post-FuseTIR, as built: call_tir bindings, aligned with the post-FuseOps calls in order
    views = _views(built)
    out = []
    built_calls = [(b.var.name, _callee(b.value), b.value) for b in _main_bindings(built)
                   if _callee(b.value) is not None and _callee(b.value) in _prim_names(built)]
    j = 0
    for var, kernel, value in built_calls:
        # FuseTIR names each fused function's PrimFunc after it and keeps the call order
        k = next((k for k in range(j, len(calls)) if calls[k][3] == kernel), None)
        if k is None:
            outs, inside = [], []
        else:
            j = k + 1
            outs, inside = calls[k][1], calls[k][2]
        n_out = _n_outputs(value)
        if len(outs) != n_out:   # not followed: say nothing rather than guess
            outs, inside = [[] for _ in range(n_out)], []
        out.append({"kernel": kernel, "view": var in views,
                    "outputs": [[w for nm in group for w in values_of(nm)] for group in outs],
                    "inside": [w for nm in inside for w in values_of(nm)]})
    return out


def _is_graphopt_group(before, gv) -> bool:
    """A Primitive function the lowering built (a graphopt fused group): it was already
    called by name before FuseOps, so its call keeps its var."""
    return any(g.name_hint == gv.name_hint for g in before.get_global_vars())


def _follow_group(fn, call, names: dict, by_sig: dict):
    """([[pre-fusion names] per output of ``fn``], [pre-fusion names inside]) for a call of
    the fused function ``fn`` at post-FuseOps ``call``."""
    from tvm import relax

    local = dict(names)
    for p, a in zip(fn.params, call.args):
        if isinstance(a, relax.Var):
            local[p.name] = names.get(a.name, a.name)
        else:
            local[p.name] = None   # a constant argument: tokenized below by value
    consts = {p.name: a for p, a in zip(fn.params, call.args) if not isinstance(a, relax.Var)}
    found = []
    for blk in fn.body.blocks:
        for b in blk.bindings:
            v = b.value
            if isinstance(v, relax.Var):
                local[b.var.name] = local.get(v.name, v.name)
                continue
            if consts and isinstance(v, relax.Call):
                v = _substitute(v, consts)
            sig = _signature(v, {k: x for k, x in local.items() if x is not None})
            hit = [h for h in by_sig.get(sig, []) if h not in found]
            if hit:
                local[b.var.name] = hit[0]
                found.append(hit[0])
    ret = fn.body.body
    rets = list(ret.fields) if isinstance(ret, relax.Tuple) else [ret]
    outs = [[local[r.name]] if isinstance(r, relax.Var) and r.name in local else [] for r in rets]
    out_names = {nm for o in outs for nm in o}
    return outs, [nm for nm in found if nm not in out_names]


def _substitute(call, consts: dict):
    """``call`` with the fused function's constant parameters replaced by the constants."""
    from tvm import relax

    def sub(e):
        if isinstance(e, relax.Var) and e.name in consts:
            return consts[e.name]
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
    """Names of main's call_tir bindings that the VM build turns into vm.builtin.reshape
    (RewriteDataflowReshape, which relax.build runs first thing after legalization)."""
    from tvm import relax

    try:
        rewritten = relax.transform.RewriteDataflowReshape()(mod)
    except Exception:  # the build will say what is wrong; the map just knows no views
        return set()
    return {b.var.name for b in _main_bindings(rewritten) if _callee(b.value) is None
            and isinstance(b.value, relax.Call)}
