"""Small helpers every op family uses: TVM's modules (imported when first needed), dtype
names, attribute and constant shorthands, and the shape bindings of values whose shapes
are known only at run time."""

from __future__ import annotations

from typing import Optional

from ...errors import GraphoptError
from ...ir import DType, Value


def rx():
    """``tvm.relax``."""
    from tvm import relax

    return relax


def tirx():
    """``tvm.tirx``."""
    from tvm import tirx as t

    return t


def tvm_dtype(dt: DType) -> str:
    """The TVM dtype name of ``dt``; a GraphoptError naming it where TVM has none."""
    name = dt.tvm
    if name is None:
        raise GraphoptError(f"dtype {dt.short} has no TVM lowering")
    return name


def dtype_of(v: Value) -> str:
    """The TVM dtype name of value ``v``."""
    return tvm_dtype(v.type.dtype)


def isnan(e):
    """relax ``isnan`` of ``e``; a bfloat16 ``e`` is widened first (TVM's isnan takes no
    bfloat16)."""
    R = rx().op
    dt = str(getattr(getattr(e, "ty", None), "dtype", ""))
    return R.isnan(R.astype(e, "float32") if dt == "bfloat16" else e)


def const(v, dt: str):
    """A TIR constant."""
    return tirx().const(v, dt)


def i64(v):
    """A TIR int64 constant."""
    return tirx().const(v, "int64")


def scalar(ctx, v, like_dtype: str):
    """A relax scalar constant."""
    return rx().const(v, like_dtype)


def add_bias(ctx, y, c, beta: float, dt: str):
    """``y + beta * c`` (Gemm's C): a constant C scaled at compile time."""
    import numpy as np

    cc = ctx.const_of(c)
    if cc is not None:
        ce = ctx.array((cc.astype(np.float64) * beta).astype(cc.dtype) if beta != 1.0 else cc, c.name)
    else:
        ce = ctx.get(c)
        if beta != 1.0:
            ce = ctx.emit(rx().op.multiply(ce, scalar(ctx, beta, dt)))
    return ctx.emit(rx().op.add(y, ce))


def axis_attr(ctx, n, name, r, default=0):
    """An axis attribute, counted from the front (ONNX allows negative axes)."""
    a = ctx.attr(n, name, default)
    return a + r if a < 0 else a


def static_shape(shape) -> bool:
    return shape is not None and all(isinstance(d, int) for d in shape)


def present(n, i) -> bool:
    """Whether optional input ``i`` of ``n`` is given (neither absent nor empty)."""
    if i >= len(n.inputs) or n.inputs[i] is None:
        return False
    s = n.inputs[i].type.shape
    return not (s is not None and len(s) == 1 and s[0] == 0)


def safe_name(name: str) -> str:
    """``name`` as an identifier (relax variable and function names)."""
    out = "".join(c if c.isalnum() or c == "_" else "_" for c in name)
    return out if out and not out[0].isdigit() else "v_" + out


def relax_dims(e) -> Optional[list]:
    """The dims (ints or PrimExprs) of a relax tensor expression; None if unknown."""
    from tvm import relax

    ty = getattr(e, "ty", None)
    if not isinstance(ty, relax.TensorType) or not isinstance(ty.shape, relax.ShapeExpr):
        return None
    return [int(d.value) if hasattr(d, "value") else d for d in ty.shape.values]


def runtime_shape(ctx, t, rank: int, out: Value, keep=()):
    """A 1-D int64 tensor computed at run time as the relax shape of ``out``: bound (and
    checked at run time) to the IR's dims of ``out`` where it has them, else to fresh
    symbols, so that the ops consuming it get symbolic, not unknown, shapes. Also returns
    ``keep`` made usable after the barrier the binding needs."""
    from tvm import relax

    shp = ctx.emit(rx().op.tensor_to_shape(t))
    shp, *kept = ctx.barrier([shp, *keep])
    ir = out.type.shape if out.type.shape is not None and len(out.type.shape) == rank else [None] * rank
    dims = [d if isinstance(d, int) else ctx.sym(d) if isinstance(d, str)
            else ctx.tvm.tirx.Var(f"{safe_name(out.name)}_d{k}", "int64") for k, d in enumerate(ir)]
    ctx.bb.match_cast(shp, relax.ShapeType(dims))
    return relax.ShapeExpr(dims), kept


def settle_shape(ctx, e, v: Value):
    """Bind a result whose shape Relax lost (a join of branches, a recursive call) to the
    IR's type of ``v`` with a run-time-checked match_cast."""
    from tvm import relax

    ty = getattr(e, "ty", None)
    if isinstance(ty, relax.TensorType) and isinstance(ty.shape, relax.ShapeExpr):
        return e
    if v.type.shape is not None:
        return ctx.bb.match_cast(e, ctx.sinfo(v))
    if ty is None or ty.ndim < 0:
        raise ctx.fail(f"output %{v.name} has unknown rank")
    dims = [ctx.sym(f"{safe_name(v.name)}_d{k}") for k in range(ty.ndim)]
    return ctx.bb.match_cast(e, relax.TensorType(dims, ty.dtype))
