"""Linear algebra: MatMul, Gemm, Einsum through relax (graphopt's packed CPU kernels for
constant weights plug in from packed.py), and Det as graphopt's own TIR kernel (TVM has
no det op).

Det: LU with partial pivoting per matrix (Eigen's PartialPivLU, which onnxruntime calls):
det = permutation sign * product of the pivots, 0 when a column has no non-zero pivot.
Batch dims are flattened to one; float16/bfloat16 compute in float32. The kernel is one
block per matrix with a serial body: the CPU schedule leaves it serial (its extents are
symbolic), dlight's GPU Fallback maps the blocks to threads.
"""

from __future__ import annotations

import functools
from typing import Optional

import numpy as np

from ...ir import Value
from .helpers import add_bias, dtype_of, rx, scalar, tirx
from .registry import register_lowering


def const_weight(ctx, b: Optional[Value]) -> Optional[np.ndarray]:
    """The constant value of a 2-D matmul weight, looking through a Transpose of a
    constant (tied embeddings: GPT-2's lm_head reads the embedding table transposed); a
    transposed view, no copy."""
    c = ctx.const_of(b)
    if c is not None or b is None:
        return c
    p = b.producer
    if p is not None and p.op_type == "Transpose" and not p.domain and len(p.inputs) == 1:
        src = ctx.const_of(p.inputs[0])
        perm = p.attr("perm", None)
        if src is not None and src.ndim == 2 and (perm is None or list(perm) == [1, 0]):
            return src.T
    return None


@register_lowering("MatMul")
def matmul(ctx, n):
    a, b = n.inputs
    return ctx.emit(rx().op.matmul(ctx.get(a), ctx.get(b)))


@register_lowering("Gemm")
def gemm(ctx, n, product=None):
    """Gemm; ``product(ctx, n, a, b_const, alpha, trans_b)`` (``a`` the lowered, already
    transposed A) may return alpha * A * B, or None to leave it to relax."""
    a, b = n.inputs[0], n.inputs[1]
    c = n.inputs[2] if len(n.inputs) > 2 else None
    alpha, beta = ctx.attr(n, "alpha", 1.0), ctx.attr(n, "beta", 1.0)
    ta, tb = ctx.attr(n, "transA", 0), ctx.attr(n, "transB", 0)
    dt = dtype_of(a)
    bc = const_weight(ctx, b)
    ae = ctx.get(a)
    if ta:
        ae = ctx.emit(rx().op.permute_dims(ae, [1, 0]))
    y = product(ctx, n, ae, bc, alpha, tb) if product is not None else None
    if y is None:
        be = ctx.get(b)
        if tb:
            be = ctx.emit(rx().op.permute_dims(be, [1, 0]))
        y = ctx.emit(rx().op.matmul(ae, be))
        if alpha != 1.0:
            y = ctx.emit(rx().op.multiply(y, scalar(ctx, alpha, dt)))
    if c is not None and beta != 0.0:
        y = add_bias(ctx, y, c, beta, dt)
    return y


@register_lowering("Einsum")
def _einsum(ctx, n):
    return ctx.emit(rx().op.einsum([ctx.get(v) for v in n.inputs], ctx.attr(n, "equation")))


# --------------------------------------------------------------------------- Det
_FLOATS = ("float32", "float64", "float16", "bfloat16")


@functools.lru_cache(maxsize=None)
def _det_kernel(dt: str):
    from tvm.script import tirx as T

    tir = tirx()
    zero, one = tir.const(0, dt), tir.const(1, dt)

    # W is an output used as scratch: per-matrix scratch of symbolic size needs no
    # allocation inside the kernel (which GPU threads could not do).
    @T.prim_func(private=True, s_tir=True)
    def det_lu(a_h: T.handle, w_h: T.handle, d_h: T.handle):
        T.func_attr({"tirx.noalias": True})
        B = T.int64()
        M = T.int64()
        A = T.match_buffer(a_h, (B, M, M), dt)
        W = T.match_buffer(w_h, (B, M, M), dt)
        D = T.match_buffer(d_h, (B,), dt)
        for b in range(B):
            with T.sblock("det_lu"):
                vb = T.axis.spatial(B, b)
                T.reads(A[vb, 0:M, 0:M])
                T.writes(W[vb, 0:M, 0:M], D[vb])
                acc = T.alloc_buffer((1,), dt, scope="local")
                best = T.alloc_buffer((1,), dt, scope="local")
                tmp = T.alloc_buffer((1,), dt, scope="local")
                p = T.alloc_buffer((1,), "int64", scope="local")
                for i, j in T.grid(M, M):
                    W[vb, i, j] = A[vb, i, j]
                acc[0] = one
                for k in range(M):
                    p[0] = k
                    best[0] = T.abs(W[vb, k, k])
                    for i in range(k + 1, M):
                        if T.abs(W[vb, i, k]) > best[0]:  # strict: the first largest, as Eigen's maxCoeff
                            best[0] = T.abs(W[vb, i, k])
                            p[0] = i
                    if best[0] == zero:
                        acc[0] = zero
                    else:
                        if p[0] != k:
                            for j in range(k, M):
                                tmp[0] = W[vb, k, j]
                                W[vb, k, j] = W[vb, p[0], j]
                                W[vb, p[0], j] = tmp[0]
                            acc[0] = -acc[0]
                        acc[0] = acc[0] * W[vb, k, k]
                        for i in range(k + 1, M):
                            tmp[0] = W[vb, i, k] / W[vb, k, k]
                            for j in range(k + 1, M):
                                W[vb, i, j] = W[vb, i, j] - tmp[0] * W[vb, k, j]
                D[vb] = acc[0]

    return det_lu


@register_lowering("Det")
def _det(ctx, n):
    x = n.inputs[0]
    R = rx()
    dt = dtype_of(x)
    if dt not in _FLOATS:
        raise ctx.fail(f"Det of {dt} is not supported (float types only)")
    shp = ctx.shape_of(x)
    if len(shp) < 2:
        raise ctx.fail(f"Det needs rank >= 2, got rank {len(shp)}")
    m, m2 = shp[-2], shp[-1]
    if isinstance(m, int) and isinstance(m2, int) and m != m2:
        raise ctx.fail(f"Det needs square matrices, got {m}x{m2}")
    batch = shp[:-2]
    cdt = "float64" if dt == "float64" else "float32"
    e = ctx.get(x)
    if cdt != dt:
        e = ctx.emit(R.op.astype(e, cdt))
    nb = functools.reduce(lambda a, b: a * b, batch, 1)
    e = ctx.emit(R.op.reshape(e, [nb, m, m]))
    gv = ctx.bb.add_func(_det_kernel(cdt), f"det_lu_{cdt}")
    res = ctx.emit(R.call_tir(gv, [e], [R.TensorType([nb, m, m], cdt), R.TensorType([nb], cdt)]))
    d = ctx.emit(R.op.reshape(ctx.emit(R.TupleGetItem(res, 1)), batch))
    if cdt != dt:
        d = ctx.emit(R.op.astype(d, dt))
    return d
