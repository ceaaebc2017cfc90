"""NonMaxSuppression as graphopt's own TIR kernels: relax's all_class_non_max_suppression
differs from onnxruntime (it suppresses at iou >= threshold, selects nothing at threshold
0, leaves boxes scoring <= 0 out of the IoU test, always applies a score threshold, has no
center_point_box, and guesses its output size when max_output_boxes_per_class is not a
constant).

It follows onnxruntime's CPU kernel: per (batch, class) the candidates (score >
score_threshold when that input is given) go through a priority queue (score descending,
ties by lower box index); a candidate is kept unless its IoU with a kept box is >
iou_threshold; boxes are normalized once to sorted corners, areas taken from the corners.
Thresholds and max_output_boxes_per_class may be run-time values. The kept count is read
back to the host to size the output, bound to the IR's symbol for it.

The kernels are one block per (batch, class) with a serial body: the CPU schedule leaves
them serial (their extents are symbolic), dlight's GPU Fallback maps the blocks to threads.
"""

from __future__ import annotations

import functools

import numpy as np

from .helpers import dtype_of, rx, tirx
from .registry import register_lowering


def _nms_norm_te(boxes, center: bool):
    """[B, N, 5]: ymin, xmin, ymax, xmax, area per box, as onnxruntime's BoxInfo. Stored
    (not recomputed per pair) so that LLVM cannot fuse the area products into the
    union's additions (an FMA rounds differently)."""
    from tvm import te

    tir = tirx()
    two = tir.const(2, "float32")

    def f(b, i, k):
        c = [boxes[b, i, j] for j in range(4)]
        if center:
            hw, hh = c[2] / two, c[3] / two
            ymin, xmin, ymax, xmax = c[1] - hh, c[0] - hw, c[1] + hh, c[0] + hw
        else:  # MaxMin(lhs, rhs): lhs >= rhs ? (rhs, lhs) : (lhs, rhs), NaN included
            gy, gx = c[0] >= c[2], c[1] >= c[3]
            ymin, ymax = tir.Select(gy, c[2], c[0]), tir.Select(gy, c[0], c[2])
            xmin, xmax = tir.Select(gx, c[3], c[1]), tir.Select(gx, c[1], c[3])
        # The area from the normalized corners, also for center boxes (not w * h): what
        # onnxruntime 1.31 computes (w * h rounds differently at the threshold).
        vals = [ymin, xmin, ymax, xmax, (ymax - ymin) * (xmax - xmin)]
        out = vals[4]
        for j in range(3, -1, -1):
            out = tir.Select(k == j, vals[j], out)
        return out

    return te.compute((boxes.shape[0], boxes.shape[1], 5), f, name="nms_boxes")


def _passes(scores, b, c, i, th, has_th: bool):
    return scores[b, c, i] > th if has_th else tirx().const(True, "bool")


def _suppress(nbox, b, i, k, th):
    """onnxruntime's BoxInfo::SuppressByIOU(candidate i, kept k); std::max/min written as
    the C++ (std::max(x, y) is y if x < y) so that NaNs propagate alike."""
    tir = tirx()
    zero = tir.const(0, "float32")
    a = [nbox[b, i, q] for q in range(5)]
    s = [nbox[b, k, q] for q in range(5)]

    def smax(x, y):
        return tir.Select(x < y, y, x)

    def smin(x, y):
        return tir.Select(y < x, y, x)

    ix0, ix1 = smax(a[1], s[1]), smin(a[3], s[3])
    iy0, iy1 = smax(a[0], s[0]), smin(a[2], s[2])
    inter = (ix1 - ix0) * (iy1 - iy0)
    union = a[4] + s[4] - inter
    # With a NaN anywhere the final comparison is false, as in onnxruntime's early returns.
    return tir.all(ix1 > ix0, iy1 > iy0, inter > zero, inter / union > th)


def _less(scores, b, c, i, j):
    """onnxruntime's BoxInfo::operator< on box indices i, j: lower score, or the same
    score and a higher index."""
    tir = tirx()
    i, j = tir.Cast("int64", i), tir.Cast("int64", j)
    si, sj = scores[b, c, i], scores[b, c, j]
    return tir.Or(si < sj, tir.And(si == sj, i > j))


@functools.lru_cache(maxsize=None)
def _nms_select_kernel(has_score_threshold: bool):
    """Per (batch, class): onnxruntime's loop over a std::priority_queue of the candidates,
    the heap kept as libstdc++ keeps it (make_heap, pop_heap), so that the visiting order
    is the oracle's even where its comparison is no order (NaN scores). No sort op: the
    kernel is the same on every target and stops after max_output_boxes_per_class."""
    from tvm.script import tirx as T

    # r: registers. 0 hole, 1 child, 2 parent, 3 value, 4 top, 5 len (args of the macro,
    # which it does not write), 6 heap size, 7 kept count.
    @T.macro
    def adjust_heap(heap, scores, vb, vc, r, top, length, value):
        # std::__adjust_heap then std::__push_heap; C++ division truncates.
        r[0] = top
        r[1] = top
        while r[1] < T.truncdiv(length - T.int64(1), T.int64(2)):
            r[1] = T.int64(2) * (r[1] + T.int64(1))
            if _less(scores, vb, vc, heap[vb, vc, r[1]], heap[vb, vc, r[1] - T.int64(1)]):
                r[1] = r[1] - T.int64(1)
            heap[vb, vc, r[0]] = heap[vb, vc, r[1]]
            r[0] = r[1]
        if T.truncmod(length, T.int64(2)) == T.int64(0) and r[1] == T.truncdiv(length - T.int64(2), T.int64(2)):
            r[1] = T.int64(2) * (r[1] + T.int64(1))
            heap[vb, vc, r[0]] = heap[vb, vc, r[1] - T.int64(1)]
            r[0] = r[1] - T.int64(1)
        r[2] = T.truncdiv(r[0] - T.int64(1), T.int64(2))
        while r[0] > top and _less(scores, vb, vc, heap[vb, vc, r[2]], value):
            heap[vb, vc, r[0]] = heap[vb, vc, r[2]]
            r[0] = r[2]
            r[2] = T.truncdiv(r[0] - T.int64(1), T.int64(2))
        heap[vb, vc, r[0]] = T.Cast("int32", value)

    @T.prim_func(private=True, s_tir=True)
    def nms_select(nb_h: T.handle, sc_h: T.handle, mo_h: T.handle, iou_h: T.handle, st_h: T.handle,
                   heap_h: T.handle, sel_h: T.handle, cnt_h: T.handle):
        T.func_attr({"tirx.noalias": True})
        B = T.int64()
        C = T.int64()
        N = T.int64()
        nbox = T.match_buffer(nb_h, (B, N, 5), "float32")
        scores = T.match_buffer(sc_h, (B, C, N), "float32")
        max_out = T.match_buffer(mo_h, (1,), "int64")
        iou_th = T.match_buffer(iou_h, (1,), "float32")
        score_th = T.match_buffer(st_h, (1,), "float32")
        heap = T.match_buffer(heap_h, (B, C, N), "int32")
        sel = T.match_buffer(sel_h, (B, C, N), "int32")
        cnt = T.match_buffer(cnt_h, (B, C), "int64")
        # One iter (not two): dlight's GEMV rule asserts on a 2-iter block writing a range.
        for bc in range(B * C):
            with T.sblock("nms_select"):
                v = T.axis.spatial(B * C, bc)
                T.reads(nbox[v // C, 0:N, 0:5], scores[v // C, v % C, 0:N], max_out[0], iou_th[0], score_th[0])
                T.writes(heap[v // C, v % C, 0:N], sel[v // C, v % C, 0:N], cnt[v // C, v % C])
                vb = v // C
                vc = v % C
                r = T.alloc_buffer((8,), "int64", scope="local")
                t = T.alloc_buffer((1,), "int64", scope="local")
                keep = T.alloc_buffer((1,), "int32", scope="local")
                cur = T.alloc_buffer((1,), "int64", scope="local")
                r[6] = T.int64(0)
                for i in range(N):
                    if _passes(scores, vb, vc, i, score_th[0], has_score_threshold):
                        heap[vb, vc, r[6]] = T.Cast("int32", i)
                        r[6] = r[6] + T.int64(1)
                if r[6] >= T.int64(2):  # std::make_heap
                    r[5] = r[6]
                    r[4] = T.truncdiv(r[6] - T.int64(2), T.int64(2))
                    while r[4] >= T.int64(0):
                        r[3] = T.Cast("int64", heap[vb, vc, r[4]])
                        adjust_heap(heap, scores, vb, vc, r, r[4], r[5], r[3])
                        r[4] = r[4] - T.int64(1)
                r[7] = T.int64(0)
                while r[6] > T.int64(0) and r[7] < max_out[0]:
                    cur[0] = T.Cast("int64", heap[vb, vc, 0])
                    keep[0] = 1
                    t[0] = T.int64(0)
                    while t[0] < r[7] and keep[0] == 1:
                        if _suppress(nbox, vb, cur[0], sel[vb, vc, t[0]], iou_th[0]):
                            keep[0] = 0
                        t[0] = t[0] + T.int64(1)
                    if keep[0] == 1:
                        sel[vb, vc, r[7]] = T.Cast("int32", cur[0])
                        r[7] = r[7] + T.int64(1)
                    if r[6] > T.int64(1):  # std::pop_heap
                        r[3] = T.Cast("int64", heap[vb, vc, r[6] - T.int64(1)])
                        heap[vb, vc, r[6] - T.int64(1)] = heap[vb, vc, 0]
                        r[4] = T.int64(0)
                        r[5] = r[6] - T.int64(1)
                        adjust_heap(heap, scores, vb, vc, r, r[4], r[5], r[3])
                    r[6] = r[6] - T.int64(1)
                cnt[vb, vc] = r[7]

    return nms_select


@functools.lru_cache(maxsize=None)
def _nms_gather_kernel():
    from tvm.script import tirx as T

    # Serial: the rows of one (batch, class) start after all earlier ones.
    @T.prim_func(private=True, s_tir=True)
    def nms_gather(sel_h: T.handle, cnt_h: T.handle, total: T.int64, out_h: T.handle):
        T.func_attr({"tirx.noalias": True})
        B = T.int64()
        C = T.int64()
        N = T.int64()
        sel = T.match_buffer(sel_h, (B, C, N), "int32")
        cnt = T.match_buffer(cnt_h, (B, C), "int64")
        out = T.match_buffer(out_h, (total, 3), "int64")
        for u in range(1):  # a loop for dlight's Fallback to bind (it skips loop-less blocks)
            with T.sblock("nms_gather"):
                vu = T.axis.spatial(1, u)
                T.reads(sel[0:B, 0:C, 0:N], cnt[0:B, 0:C])
                T.writes(out[0:total, 0:3])
                off = T.alloc_buffer((1,), "int64", scope="local")
                off[0] = T.int64(0)
                for b, c, i in T.grid(B, C, N):
                    if i < cnt[b, c]:
                        out[off[0], 0] = b
                        out[off[0], 1] = c
                        out[off[0], 2] = T.Cast("int64", sel[b, c, i])
                        off[0] = off[0] + T.int64(1)

    return nms_gather


def _scalar_input(ctx, n, i, dtype):
    """Input i's first element as a [1] tensor of ``dtype`` (onnxruntime reads element 0),
    or None when the input is absent."""
    if i >= len(n.inputs) or n.inputs[i] is None:
        return None
    v = n.inputs[i]
    s = v.type.shape
    if s is not None and all(isinstance(d, int) for d in s) and int(np.prod(s)) == 0:
        raise ctx.fail(f"input {i} (%{v.name}) is empty; it must hold one value")
    R = rx().op
    e = ctx.emit(R.reshape(ctx.get(v), [-1]))
    if s is None or not (len(s) <= 1 and all(d == 1 for d in s)):
        e = ctx.emit(R.strided_slice(e, [0], [0], [1]))
    if dtype_of(v) != dtype:
        e = ctx.emit(R.astype(e, dtype))
    return e


def _bind_rows(ctx, n):
    """The output's data-dependent row count as a tirx.Var: the IR's symbol, or a fresh one."""
    shp = n.outputs[0].type.shape
    d = shp[0] if shp is not None else None
    if isinstance(d, str):
        return ctx.sym(d)
    return ctx.tvm.tirx.Var(f"nms_rows{len(ctx.syms)}", "int64")


@register_lowering("NonMaxSuppression")
def _nms(ctx, n):
    relax = rx()
    R = relax.op
    boxes, scores = n.inputs[0], n.inputs[1]
    for v in (boxes, scores):
        if dtype_of(v) != "float32":
            raise ctx.fail(f"NonMaxSuppression on {dtype_of(v)} is not supported (float32 only, as onnxruntime)")
        if ctx.rank(v) != 3:
            raise ctx.fail(f"NonMaxSuppression needs 3-D boxes and scores, %{v.name} has rank {ctx.rank(v)}")
    center = ctx.attr(n, "center_point_box", 0)
    if center not in (0, 1):
        raise ctx.fail(f"center_point_box must be 0 or 1, got {center}")
    rows = _bind_rows(ctx, n)

    def empty():
        z = ctx.emit(R.zeros([0, 3], "int64"))
        return ctx.bb.match_cast(z, relax.TensorType([rows, 3], "int64"))

    mo_v = n.inputs[2] if len(n.inputs) > 2 else None
    if mo_v is None:
        return empty()  # absent: 0 boxes per class
    mo_c = ctx.const_of(mo_v)
    if mo_c is not None:
        mo = int(np.asarray(mo_c).reshape(-1)[0])
        if mo <= 0:
            return empty()
        max_out = relax.const(np.array([mo], np.int64), "int64")
    else:
        max_out = _scalar_input(ctx, n, 2, "int64")
    iou = _scalar_input(ctx, n, 3, "float32")
    if iou is None:
        iou = relax.const(np.zeros(1, np.float32), "float32")
    else:
        c = ctx.const_of(n.inputs[3])
        if c is not None:
            t = float(np.asarray(c, np.float32).reshape(-1)[0])
            if not 0.0 <= t <= 1.0:  # onnxruntime refuses it at run time
                raise ctx.fail(f"iou_threshold must be in [0, 1], got {t}")
    score_th = _scalar_input(ctx, n, 4, "float32")
    has_th = score_th is not None
    if score_th is None:
        score_th = relax.const(np.zeros(1, np.float32), "float32")

    be, se = ctx.get(boxes), ctx.get(scores)
    bshape, sshape = ctx.shape_of(boxes), ctx.shape_of(scores)
    if isinstance(bshape[2], int) and bshape[2] != 4:
        raise ctx.fail(f"boxes' last dim must be 4, got {bshape[2]}")
    nb, nbox, ncls = sshape[0], sshape[2], sshape[1]
    norm = ctx.te(_nms_norm_te, be, bool(center), primfunc_name_hint="nms_boxes")
    gv_sel = ctx.bb.add_func(_nms_select_kernel(has_th), "nms_select" + ("_st" if has_th else ""))
    res = ctx.emit(relax.call_tir(gv_sel, [norm, se, max_out, iou, score_th],
                                  [relax.TensorType([nb, ncls, nbox], "int32"),  # heap (scratch)
                                   relax.TensorType([nb, ncls, nbox], "int32"),
                                   relax.TensorType([nb, ncls], "int64")]))
    sel = ctx.emit(relax.TupleGetItem(res, 1))
    cnt = ctx.emit(relax.TupleGetItem(res, 2))
    total = ctx.emit(R.reshape(ctx.emit(R.sum(cnt)), [1]))
    shape = ctx.emit(R.tensor_to_shape(total))
    shape, sel, cnt = ctx.barrier([shape, sel, cnt])  # see Ctx.barrier: rows is bound here
    ctx.bb.match_cast(shape, relax.ShapeType([rows]))
    gv_gather = ctx.bb.add_func(_nms_gather_kernel(), "nms_gather")
    return ctx.emit(relax.call_tir(gv_gather, [sel, cnt, rows],
                                   relax.TensorType([rows, 3], "int64")))
