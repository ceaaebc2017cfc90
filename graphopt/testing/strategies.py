"""Hypothesis strategies that build random, valid graphopt graphs (public API).

Use them to test a pass against the oracle:

    from hypothesis import given, settings
    from graphopt import verify
    from graphopt.testing import assert_close, run_reference, strategies as gst

    @settings(max_examples=200, deadline=None)
    @given(gst.graph_and_inputs(max_nodes=20))
    def test_my_pass_keeps_semantics(case):
        graph, inputs = case
        expected = run_reference(graph, inputs)
        my_pass(graph)
        verify(graph)
        assert_close(expected, run_reference(graph, inputs))

What a generated graph is
-------------------------
* Built only with `graphopt.ops.build`, so every node's output types are the op registry's;
  every graph passes `graphopt.verify`, exports with `graphopt.export_onnx` and runs on
  `graphopt.testing.run_reference` (ONNX opset 21).
* A DAG, not a chain: a node reads any earlier value of a fitting shape (graph inputs,
  constants, outputs of earlier nodes), the same value may feed several nodes (or one node
  twice), and a graph often has several outputs. Nodes whose outputs nobody reads become
  graph outputs or, sometimes, dead code.
* Op families (see `FAMILIES`): unary elementwise (Relu, Sigmoid, Tanh, Abs, Neg, Exp,
  Sqrt, Log, Erf, Softplus), broadcasting binary (Add, Sub, Mul, Div), MatMul and Gemm
  (transA/transB, alpha/beta, optional C), Conv (1-D and 2-D: kernel, strides, pads,
  dilations, group, auto_pad, optional bias), pooling (MaxPool, AveragePool with pads,
  dilations, ceil_mode, count_include_pad; GlobalAveragePool, GlobalMaxPool), reductions
  (ReduceSum/Mean/Max/Min with an axes input or none, keepdims), layout (Reshape with 0
  and -1, Transpose, Flatten, Squeeze, Unsqueeze), Concat and Split (sizes input or
  num_outputs), Softmax/LogSoftmax, BatchNormalization (inference form) and
  LayerNormalization, Identity and Cast.
* Numerically tame: with every input element in [-1, 1] no value of the graph (outputs
  *and* intermediates) is NaN or infinite, and every value lies within
  [-`VALUE_BOUND`, `VALUE_BOUND`]. The generator tracks an interval for every value and
  only applies an op when the result stays bounded: Exp only of values <= 2, Sqrt and Log
  only of values >= 0.01 (or of ``Abs(x) + c``), Div only by values bounded away from 0
  (a constant of magnitude >= 0.5, ``Abs(x) + c``, or any value known to be >= 0.5 in
  magnitude); weights are scaled to keep sums small. Sums never run over a symbolic dim.
  Values never come from a cancellation near 0 that a following Sqrt/Log/Div would
  amplify, so the oracle's tolerances (`graphopt.testing.TOLERANCES`) stay meaningful
  when a pass merely reassociates float arithmetic.
* ``symbolic=True``: dim 0 of every graph input is the symbol ``"N"`` (a batch) and a
  sequence-like input may have ``"S"`` as its dim 1; the symbols propagate through the
  graph (type inference may also derive fresh symbols, e.g. after Flatten). The graph is
  valid for every size of ``N`` and ``S`` from 1 to `MAX_SYMBOL_SIZE`.
* Shrinking goes towards few nodes, few and small inputs, and the first op of each
  family (Relu, Add, MatMul, ...).

Restricting the ops: ``ops`` is a set of op types and/or family names (``"unary"``,
``"conv"``...); only those op types appear in the graph. Some ops need helpers to stay
valid (Sqrt/Log of ``Abs(x) + c``, Div by ``Abs(x) + c``): the helper form is used only
when Abs and Add are allowed too, otherwise such an op is applied only where an operand
already fits (so ``ops=["Sqrt"]`` alone finds nothing to apply to and hypothesis reports
the strategy as unsatisfiable: add a producer of positive values such as Sigmoid or Exp).

Cost: drawing a graph takes a few milliseconds (most of it hypothesis' own bookkeeping);
running it on the oracle costs more than drawing it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Iterable, Mapping, Optional, Sequence, Union

import numpy as np
from hypothesis import reject
from hypothesis import strategies as st

from ..ir import DType, Graph, TensorData, TensorType, Value
from ..ir.types import Dim
from ..ops import build
from .oracle import random_inputs

__all__ = [
    "ALL_OPS", "FAMILIES", "MAX_SYMBOL_SIZE", "SYMBOLS", "VALUE_BOUND", "F16", "F32", "F64",
    "graphs", "graph_and_inputs", "tensor_types", "shapes", "symbols_of", "inputs_for",
]

F32, F16, F64 = DType.FLOAT32, DType.FLOAT16, DType.FLOAT64

#: Every value of a generated graph stays within [-VALUE_BOUND, VALUE_BOUND] on inputs in [-1, 1].
VALUE_BOUND = 16.0
#: Generated graphs are valid (and bounded) for every symbol size from 1 to this.
MAX_SYMBOL_SIZE = 8
#: The symbolic dims graph inputs use with ``symbolic=True``.
SYMBOLS = ("N", "S")

#: Op families, each a tuple of op types. The first family and first op shrink best.
FAMILIES: Mapping[str, tuple[str, ...]] = {
    "unary": ("Relu", "Sigmoid", "Tanh", "Abs", "Neg", "Exp", "Sqrt", "Log", "Erf", "Softplus"),
    "binary": ("Add", "Sub", "Mul", "Div"),
    "matmul": ("MatMul", "Gemm"),
    "conv": ("Conv",),
    "pool": ("MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool"),
    "reduce": ("ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin"),
    "layout": ("Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze"),
    "concat_split": ("Concat", "Split"),
    "softmax": ("Softmax", "LogSoftmax"),
    "norm": ("BatchNormalization", "LayerNormalization"),
    "misc": ("Identity", "Cast"),
}
#: Every op type the strategies generate.
ALL_OPS = frozenset(op for ops in FAMILIES.values() for op in ops)

_FLOAT_DTYPES = (F32, F16, F64)
# onnxruntime's CPU provider has no double kernel for these (checked with onnxruntime 1.23).
_NO_F64 = frozenset({"Erf", "Softplus", "Conv", "AveragePool", "GlobalAveragePool", "GlobalMaxPool"})
_ONNX_DTYPE = {F32: 1, F16: 10, F64: 11}

_MAX_RANK = 5
_MAX_NUMEL = 4096  # counting a symbol as MAX_SYMBOL_SIZE
_SQRT_MIN = 0.01   # Sqrt/Log operands are at least this
_DIV_MIN = 0.5     # Div denominators are at least this in magnitude

Interval = tuple[float, float]


# ---------------------------------------------------------------------------- small helpers
def _mag(iv: Interval) -> float:
    return max(abs(iv[0]), abs(iv[1]))


def _iv_mul(a: Interval, b: Interval) -> Interval:
    ps = (a[0] * b[0], a[0] * b[1], a[1] * b[0], a[1] * b[1])
    return (min(ps), max(ps))


def _iv_binary(op: str, a: Interval, b: Interval) -> Interval:
    if op == "Add":
        return (a[0] + b[0], a[1] + b[1])
    if op == "Sub":
        return (a[0] - b[1], a[1] - b[0])
    if op == "Mul":
        return _iv_mul(a, b)
    assert b[0] > 0 or b[1] < 0, "division by an interval holding 0"
    return _iv_mul(a, (1.0 / b[1], 1.0 / b[0]))


def _abs_iv(iv: Interval) -> Interval:
    lo, hi = iv
    if lo >= 0:
        return iv
    if hi <= 0:
        return (-hi, -lo)
    return (0.0, max(-lo, hi))


def _mono(f: Callable[[float], float]) -> Callable[[Interval], Interval]:
    return lambda iv: (f(iv[0]), f(iv[1]))


_UNARY_IV: dict[str, Callable[[Interval], Interval]] = {
    "Relu": _mono(lambda x: max(x, 0.0)),
    "Sigmoid": _mono(lambda x: 1.0 / (1.0 + math.exp(-x))),
    "Tanh": _mono(math.tanh),
    "Abs": _abs_iv,
    "Neg": lambda iv: (-iv[1], -iv[0]),
    "Exp": _mono(math.exp),
    "Sqrt": _mono(math.sqrt),
    "Log": _mono(math.log),
    "Erf": _mono(math.erf),
    "Softplus": _mono(lambda x: math.log1p(math.exp(x))),
    "Identity": lambda iv: iv,
}


def _numel(shape: Sequence[Dim]) -> int:
    n = 1
    for d in shape:
        n *= d if isinstance(d, int) else MAX_SYMBOL_SIZE
    return n


def _bcast(a: Sequence[Dim], b: Sequence[Dim]) -> Optional[tuple[Dim, ...]]:
    """Numpy broadcasting that holds for every binding of the symbols (a symbol only meets
    itself or 1), else None."""
    r = max(len(a), len(b))
    out: list[Dim] = []
    for i in range(1, r + 1):
        da = a[-i] if i <= len(a) else 1
        db = b[-i] if i <= len(b) else 1
        if da == db or db == 1:
            out.append(da)
        elif da == 1:
            out.append(db)
        else:
            return None
    return tuple(reversed(out))


def _divisors(n: int) -> list[int]:
    small, large = [], []
    i = 1
    while i * i <= n:
        if n % i == 0:
            small.append(i)
            if i * i != n:
                large.append(n // i)
        i += 1
    return small + large[::-1]


def _is_static(shape: Sequence[Dim]) -> bool:
    return all(isinstance(d, int) for d in shape)


@lru_cache(maxsize=None)
def _ints(lo: int, hi: int) -> st.SearchStrategy[int]:
    return st.integers(lo, hi)


_BOOLS = st.booleans()
_SEEDS = st.integers(0, 2**32 - 1)


def _ceil_windows_start_inside(spatial, kernel, strides, dil, pads) -> bool:
    """ceil_mode adds a last window on some axis; every such window starts before the end
    padding, where every runtime agrees on the output size."""
    n = len(spatial)
    for i, d in enumerate(spatial):
        if not isinstance(d, int):
            return False
        span = d + pads[i] + pads[i + n] - (dil[i] * (kernel[i] - 1) + 1)
        out = -(-span // strides[i]) + 1
        if (out - 1) * strides[i] >= d + pads[i]:
            return False
    return True


class _Skip(Exception):
    """The op drawn does not fit here (or would break a bound): undo and draw another."""


def _dtype(d: Union[DType, str]) -> DType:
    dt = d if isinstance(d, DType) else DType.parse(d)
    if dt not in _FLOAT_DTYPES:
        raise ValueError(f"dtypes must be float types among f32, f16, f64; got {dt.short}")
    return dt


def _supports(op: str, dt: DType) -> bool:
    return not (dt is F64 and op in _NO_F64)


# ---------------------------------------------------------------------------- configuration
@dataclass(frozen=True)
class _Config:
    min_nodes: int
    max_nodes: int
    ops: frozenset
    symbolic: bool
    dtypes: tuple[DType, ...]
    allow_constants: bool

    @property
    def families(self) -> list[tuple[str, tuple[str, ...]]]:
        out = []
        for fam, ops in FAMILIES.items():
            keep = tuple(o for o in ops if o in self.ops)
            if keep:
                out.append((fam, keep))
        return out


def _config(min_nodes, max_nodes, ops, symbolic, dtypes, allow_constants) -> _Config:
    if min_nodes < 0 or max_nodes < min_nodes:
        raise ValueError(f"need 0 <= min_nodes <= max_nodes, got {min_nodes}, {max_nodes}")
    if ops is None:
        chosen = ALL_OPS
    else:
        if isinstance(ops, str):
            ops = [ops]
        chosen_set: set[str] = set()
        for o in ops:
            if o in FAMILIES:
                chosen_set.update(FAMILIES[o])
            elif o in ALL_OPS:
                chosen_set.add(o)
            else:
                raise ValueError(f"unknown op or family {o!r}; ops are {sorted(ALL_OPS)}, "
                                 f"families {sorted(FAMILIES)}")
        chosen = frozenset(chosen_set)
        if not chosen and max_nodes > 0:
            raise ValueError("ops is empty")
    dts = tuple(_dtype(d) for d in ([dtypes] if isinstance(dtypes, (DType, str)) else dtypes))
    if not dts:
        raise ValueError("dtypes is empty")
    return _Config(int(min_nodes), int(max_nodes), chosen, bool(symbolic), dts, bool(allow_constants))


# ---------------------------------------------------------------------------- the builder
class _Builder:
    """Grows one graph, drawing every decision from hypothesis."""

    def __init__(self, draw, cfg: _Config):
        self.draw = draw
        self.cfg = cfg
        self.g = Graph("main", {"": 21})
        self.rng = np.random.default_rng(draw(_SEEDS))
        self.pool: list[Value] = []           # float values nodes may read, oldest first
        self.iv: dict[str, Interval] = {}     # value name -> bounds of its elements
        self.created: list[tuple[str, object]] = []
        self.families: list = []
        self.more = 1

    # draws ---------------------------------------------------------------
    def int(self, lo: int, hi: int) -> int:
        return lo if lo >= hi else self.draw(_ints(lo, hi))

    def bool(self) -> bool:
        return self.draw(_BOOLS)

    def rarely(self, n: int = 4) -> bool:
        """True about once in ``n`` draws; shrinks to False."""
        return self.int(0, n - 1) == n - 1

    def choice(self, seq: Sequence):
        return seq[self.int(0, len(seq) - 1)]

    def allowed(self, *ops: str) -> bool:
        return all(o in self.cfg.ops for o in ops)

    # graph pieces ----------------------------------------------------------
    def add_input(self, t: TensorType, hint: str = "x", pool: bool = True) -> Value:
        v = self.g.add_input(self.g.fresh_name(hint), t)
        self.created.append(("input", v))
        self.iv[v.name] = (-1.0, 1.0)
        if pool:
            self.pool.append(v)
        return v

    def const(self, arr: np.ndarray, dtype: DType, pool: bool = True) -> Value:
        arr = np.ascontiguousarray(np.asarray(arr).astype(dtype.numpy))
        v = self.g.add_constant(self.g.fresh_name("c"), TensorData(arr, dtype))
        self.created.append(("const", v))
        if dtype.is_float:
            self.iv[v.name] = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
            if pool:
                self.pool.append(v)
        return v

    def int_const(self, values: Sequence[int]) -> Value:
        return self.const(np.array(list(values), dtype=np.int64), DType.INT64)

    def weight(self, shape: Sequence[int], dtype: DType, lo: float = -1.0, hi: float = 1.0,
               pool: bool = True) -> tuple[Value, Interval, Optional[np.ndarray]]:
        """A weight-like operand: a constant with elements in [lo, hi], or (constants not
        allowed) a new graph input (elements in [-1, 1]). Returns it, its bounds and its data."""
        if self.cfg.allow_constants:
            arr = self.rng.uniform(lo, hi, tuple(shape)).astype(dtype.numpy)
            v = self.const(arr, dtype, pool=pool)
            return v, self.iv[v.name], arr.astype(np.float64)
        v = self.add_input(TensorType(dtype, tuple(shape)), "w", pool=pool)
        return v, (-1.0, 1.0), None

    def node(self, op: str, inputs: Sequence[Optional[Value]], attrs: Optional[dict] = None,
             iv: Optional[Interval] = None, num_outputs: Optional[int] = None, pool: bool = True):
        if len(self.g) >= self.cfg.max_nodes:
            raise _Skip
        n = build(self.g, op, inputs, attrs or {}, num_outputs=num_outputs)
        self.created.append(("node", n))
        for o in n.outputs:
            if o is None:
                continue
            if o.type.shape is None or _numel(o.type.shape) > _MAX_NUMEL or len(o.type.shape) > _MAX_RANK:
                raise _Skip
            assert iv is not None and _mag(iv) <= VALUE_BOUND * (1 + 1e-6), (op, iv)
            self.iv[o.name] = iv
            if pool:
                self.pool.append(o)
        return n

    def rollback(self, mark: tuple[int, int]) -> None:
        n_created, n_pool = mark
        for kind, obj in reversed(self.created[n_created:]):
            if kind == "node":
                self.g.erase_node(obj)  # type: ignore[arg-type]
            elif kind == "const":
                self.g.remove_constant(obj)  # type: ignore[arg-type]
            else:
                self.g.remove_input(obj)  # type: ignore[arg-type]
        del self.created[n_created:]
        del self.pool[n_pool:]

    # operand choice ----------------------------------------------------------
    def values(self, op: str, pred: Optional[Callable[[Value], bool]] = None) -> list[Value]:
        """Pool values ``op`` can read that satisfy ``pred``, most recent first."""
        return [v for v in reversed(self.pool)
                if _supports(op, v.type.dtype) and (pred is None or pred(v))]

    def pick(self, op: str, pred: Optional[Callable[[Value], bool]] = None) -> Value:
        cands = self.values(op, pred)
        if not cands:
            raise _Skip
        return self.choice(cands)

    def const_shape_like(self, shape: Sequence[Dim]) -> list[int]:
        """A static shape that broadcasts against ``shape`` (for the result, maybe with a
        new leading dim)."""
        r = len(shape)
        k = self.int(0, r)
        dims = [d if isinstance(d, int) and self.int(0, 2) > 0 else 1 for d in shape[r - k:]]
        if k == r and r < 4 and self.rarely(6):
            dims = [self.int(1, 3)] + dims
        return dims

    def positive(self, like: Value, minimum: float) -> tuple[Value, Interval]:
        """``Abs(y) + c`` with c >= minimum, y a value of ``like``'s dtype broadcasting with it."""
        if not (self.allowed("Abs", "Add") and self.cfg.allow_constants):
            raise _Skip
        y = self.pick("Abs", lambda v: v.type.dtype is like.type.dtype
                      and _bcast(like.type.shape, v.type.shape) is not None)
        shape = self.const_shape_like(y.type.shape) if self.bool() else []
        den_shape = _bcast(y.type.shape, shape)
        if den_shape is None or _bcast(like.type.shape, den_shape) is None:
            raise _Skip
        a = self.node("Abs", [y], iv=_abs_iv(self.iv[y.name]))
        c = self.const(self.rng.uniform(minimum, 2 * minimum + 0.5, shape), y.type.dtype, pool=False)
        iv = _iv_binary("Add", self.iv[a.output.name], self.iv[c.name])
        if _mag(iv) > VALUE_BOUND:
            raise _Skip
        s = self.node("Add", [a.output, c], iv=iv)
        return s.output, iv

    # ---------------------------------------------------------------- families
    def unary(self, op: str) -> None:
        f = _UNARY_IV[op]
        if op in ("Sqrt", "Log"):
            cands = self.values(op, lambda v: self.iv[v.name][0] >= _SQRT_MIN)
            helper_ok = self.allowed("Abs", "Add") and self.cfg.allow_constants
            if cands and (not helper_ok or self.bool()):
                x = self.choice(cands)
            else:
                x, _ = self.positive(self.pick(op), _SQRT_MIN * 10)
        elif op == "Exp":
            x = self.pick(op, lambda v: self.iv[v.name][1] <= 2.0)
        else:
            x = self.pick(op)
        iv = f(self.iv[x.name])
        if _mag(iv) > VALUE_BOUND:
            raise _Skip
        self.node(op, [x], iv=iv)

    def binary(self, op: str) -> None:
        x = self.pick(op)
        dt = x.type.dtype
        if op == "Div":
            return self.div(x)
        kind = self.int(0, 2)  # 0: another value, 1: a constant, 2: x itself
        if kind == 1 and not self.cfg.allow_constants:
            kind = 0
        if kind == 0:
            cands = self.values(op, lambda v: v is not x and v.type.dtype is dt
                                and _bcast(x.type.shape, v.type.shape) is not None)
            y = self.choice(cands) if cands else x
            yiv = self.iv[y.name]
        elif kind == 1:
            shape = self.const_shape_like(x.type.shape)
            arr = self.rng.uniform(-1.0, 1.0, shape).astype(dt.numpy)
            yiv = (float(arr.min()), float(arr.max()))
            y = None
        else:
            y, yiv = x, self.iv[x.name]
        swap = self.bool()
        a_iv, b_iv = (yiv, self.iv[x.name]) if swap else (self.iv[x.name], yiv)
        iv = _iv_binary(op, a_iv, b_iv)
        if _mag(iv) > VALUE_BOUND:
            raise _Skip
        if y is None:
            y = self.const(arr, dt)
        self.node(op, [y, x] if swap else [x, y], iv=iv)

    def div(self, x: Value) -> None:
        dt = x.type.dtype
        xiv = self.iv[x.name]

        def away(v: Value) -> bool:
            return self.iv[v.name][0] >= _DIV_MIN or self.iv[v.name][1] <= -_DIV_MIN

        kind = self.choice(("value", "const", "helper"))
        den: Optional[Value] = None
        if kind == "value":
            cands = self.values("Div", lambda v: v.type.dtype is dt and away(v)
                                and _bcast(x.type.shape, v.type.shape) is not None)
            if cands:
                den = self.choice(cands)
            else:
                kind = "const" if self.cfg.allow_constants else "helper"
        if kind == "const" and self.cfg.allow_constants:
            shape = self.const_shape_like(x.type.shape)
            mag = self.rng.uniform(_DIV_MIN, 2.0, shape)
            signs = self.int(0, 2)  # 0: positive, 1: negative, 2: mixed
            if signs == 1:
                mag = -mag
            elif signs == 2:
                mag = mag * np.where(self.rng.uniform(size=shape) < 0.5, -1.0, 1.0)
            arr = np.asarray(mag).astype(dt.numpy)
            absmin = float(np.min(np.abs(arr)))
            if signs == 2:
                bound = _mag(xiv) / absmin  # |x / den| <= |x| / min|den|
                iv: Interval = (-bound, bound)
            else:
                iv = _iv_binary("Div", xiv, (float(arr.min()), float(arr.max())))
            if _mag(iv) > VALUE_BOUND:
                raise _Skip
            den = self.const(arr, dt, pool=False)
            self.node("Div", [x, den], iv=iv)
            return
        if den is None:
            den, _ = self.positive(x, _DIV_MIN * 2)
        iv = _iv_binary("Div", xiv, self.iv[den.name])
        if _mag(iv) > VALUE_BOUND:
            raise _Skip
        self.node("Div", [x, den], iv=iv)

    def matmul(self, op: str) -> None:
        if op == "Gemm":
            return self.gemm()
        x = self.pick(op, lambda v: len(v.type.shape) >= 1 and isinstance(v.type.shape[-1], int))
        dt, xs = x.type.dtype, x.type.shape
        K = xs[-1]
        bx = _mag(self.iv[x.name])

        def fits(v: Value) -> bool:
            s = v.type.shape
            if v.type.dtype is not dt or len(s) < 1:
                return False
            if len(s) == 1:
                return s[0] == K and len(xs) >= 1
            if s[-2] != K:
                return False
            return _bcast(xs[:-2], s[:-2]) is not None

        use_value = not self.cfg.allow_constants or self.bool()
        if use_value:
            y = self.pick(op, fits)
            bound = K * bx * _mag(self.iv[y.name])
            if bound > VALUE_BOUND:
                raise _Skip
            self.node("MatMul", [x, y], iv=(-bound, bound))
            return
        shape = [K] if self.rarely(5) else [K, self.int(1, 8)]
        arr = self.rng.uniform(-1.0, 1.0, shape) / math.sqrt(K)
        colsum = float(np.max(np.sum(np.abs(arr), axis=0)))
        bound = bx * colsum
        if bound > VALUE_BOUND / 2:
            arr *= (VALUE_BOUND / 2) / bound
        w = self.const(arr, dt)
        wa = w.const.numpy().astype(np.float64)  # type: ignore[union-attr]
        bound = bx * float(np.max(np.sum(np.abs(wa), axis=0)))
        self.node("MatMul", [x, w], iv=(-bound, bound))

    def gemm(self) -> None:
        cands = [(v, ta) for v in self.values("Gemm", lambda v: len(v.type.shape) == 2)
                 for ta in (0, 1) if isinstance(v.type.shape[1 - ta], int)]
        if not cands:
            raise _Skip
        a, ta = self.choice(cands)
        dt = a.type.dtype
        K = a.type.shape[1 - ta]
        M = a.type.shape[ta]
        tb = self.int(0, 1)
        ba = _mag(self.iv[a.name])
        alpha = self.choice((1.0, 0.5, -1.0, 2.0, 0.25)) if self.bool() else 1.0
        if not self.cfg.allow_constants or self.rarely(3):
            b = self.pick("Gemm", lambda v: v.type.dtype is dt and len(v.type.shape) == 2
                          and v.type.shape[tb] == K and isinstance(v.type.shape[1 - tb], int))
            N = b.type.shape[1 - tb]
            prod = abs(alpha) * K * ba * _mag(self.iv[b.name])
        else:
            N = self.int(1, 8)
            shape = (N, K) if tb else (K, N)
            arr = self.rng.uniform(-1.0, 1.0, shape) / math.sqrt(K)
            colsum = float(np.max(np.sum(np.abs(arr), axis=1 if tb else 0)))
            if abs(alpha) * ba * colsum > VALUE_BOUND / 2:
                arr *= (VALUE_BOUND / 2) / (abs(alpha) * ba * colsum)
            b = self.const(arr, dt)
            wa = b.const.numpy().astype(np.float64)  # type: ignore[union-attr]
            prod = abs(alpha) * ba * float(np.max(np.sum(np.abs(wa), axis=1 if tb else 0)))
        inputs = [a, b]
        attrs: dict = {}
        if ta or self.rarely():
            attrs["transA"] = ta
        if tb or self.rarely():
            attrs["transB"] = tb
        if alpha != 1.0:
            attrs["alpha"] = alpha
        cbound = 0.0
        if self.cfg.allow_constants and self.bool():
            opts: list[list[int]] = [[], [N], [1, N]]
            if isinstance(M, int):
                opts += [[M, N], [M, 1]]
            cshape = self.choice(opts)
            beta = self.choice((1.0, 0.5, -1.0, 2.0)) if self.bool() else 1.0
            if beta != 1.0:
                attrs["beta"] = beta
            c, civ, _ = self.weight(cshape, dt)
            inputs.append(c)
            cbound = abs(beta) * _mag(civ)
        bound = prod + cbound
        if bound > VALUE_BOUND:
            raise _Skip
        self.node("Gemm", inputs, attrs, iv=(-bound, bound))

    def _spatial_input(self, op: str) -> Value:
        return self.pick(op, lambda v: len(v.type.shape) in (3, 4) and _is_static(v.type.shape[1:]))

    def conv(self, op: str) -> None:
        x = self._spatial_input(op)
        dt = x.type.dtype
        C = x.type.shape[1]
        sp = list(x.type.shape[2:])
        n = len(sp)
        g = self.choice(_divisors(C))
        M = g * self.int(1, 3)
        Cg = C // g
        auto_pad = self.choice(("NOTSET", "NOTSET", "NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"))
        strides = [self.int(1, 2) for _ in range(n)]
        # onnxruntime refuses dilations with auto_pad SAME_*
        dil = [1 if auto_pad.startswith("SAME") else self.int(1, 2) for _ in range(n)]
        pads = [self.int(0, 2) for _ in range(2 * n)] if auto_pad == "NOTSET" else [0] * (2 * n)
        kernel = []
        for i in range(n):
            k = self.int(1, 3)
            room = sp[i] + (0 if auto_pad.startswith("SAME") else pads[i] + pads[i + n])
            while k > 1 and dil[i] * (k - 1) + 1 > room:
                k -= 1
            if dil[i] * (k - 1) + 1 > room:
                dil[i] = 1
            kernel.append(k)
        fan_in = Cg * int(np.prod(kernel))
        bx = _mag(self.iv[x.name])
        inputs: list[Value] = [x]
        if self.cfg.allow_constants:
            arr = self.rng.uniform(-1.0, 1.0, [M, Cg, *kernel]) / math.sqrt(fan_in)
            s = float(np.max(np.sum(np.abs(arr.reshape(M, -1)), axis=1)))
            if bx * s > VALUE_BOUND / 2:
                arr *= (VALUE_BOUND / 2) / (bx * s)
            w = self.const(arr, dt)
            wa = w.const.numpy().astype(np.float64).reshape(M, -1)  # type: ignore[union-attr]
            bound = bx * float(np.max(np.sum(np.abs(wa), axis=1)))
        else:
            w = self.add_input(TensorType(dt, (M, Cg, *kernel)), "w")
            bound = bx * fan_in
        inputs.append(w)
        if self.cfg.allow_constants and self.bool():
            b, biv, _ = self.weight([M], dt, -0.5, 0.5)
            inputs.append(b)
            bound += _mag(biv)
        if bound > VALUE_BOUND:
            raise _Skip
        attrs: dict = {}
        if self.bool():
            attrs["kernel_shape"] = kernel
        if any(s != 1 for s in strides) or self.rarely():
            attrs["strides"] = strides
        if any(d != 1 for d in dil) or self.rarely():
            attrs["dilations"] = dil
        if auto_pad != "NOTSET":
            attrs["auto_pad"] = auto_pad
        elif any(pads) or self.rarely():
            attrs["pads"] = pads
        if g != 1 or self.rarely():
            attrs["group"] = g
        self.node("Conv", inputs, attrs, iv=(-bound, bound))

    def pool_op(self, op: str) -> None:
        if op.startswith("Global"):
            x = self.pick(op, lambda v: len(v.type.shape) >= 3)
            self.node(op, [x], iv=self.iv[x.name])
            return
        x = self._spatial_input(op)
        sp = list(x.type.shape[2:])
        n = len(sp)
        kernel, strides, dil, pads = [], [], [], [0] * (2 * n)
        for i in range(n):
            k = self.int(1, 3)
            d = self.int(1, 2) if (op == "MaxPool" or self.rarely()) else 1
            while k > 1 and d * (k - 1) + 1 > sp[i]:
                k -= 1
            if d * (k - 1) + 1 > sp[i]:
                d = 1
            kernel.append(k)
            dil.append(d)
            strides.append(self.int(1, 2))
        auto_pad = "NOTSET" if not self.rarely(5) else self.choice(("SAME_UPPER", "SAME_LOWER", "VALID"))
        if auto_pad.startswith("SAME"):
            # onnxruntime's SAME padding for pools ignores dilations (its output shape differs
            # from ONNX's) and fails on a kernel smaller than the stride (negative pads).
            dil = [1] * n
            strides = [min(s, k) for s, k in zip(strides, kernel)]
        if auto_pad == "NOTSET":
            for i in range(n):
                pads[i] = self.int(0, kernel[i] - 1)
                pads[i + n] = self.int(0, kernel[i] - 1)
        attrs: dict = {"kernel_shape": kernel}
        if any(s != 1 for s in strides) or self.rarely():
            attrs["strides"] = strides
        if any(d != 1 for d in dil) or self.rarely(8):
            attrs["dilations"] = dil
        if auto_pad != "NOTSET":
            attrs["auto_pad"] = auto_pad
        elif any(pads) or self.rarely(8):
            attrs["pads"] = pads
        if auto_pad == "NOTSET" and self.rarely(3) and _ceil_windows_start_inside(sp, kernel, strides, dil, pads):
            # (onnxruntime mis-sizes or rejects ceil_mode with auto_pad SAME_*; and where the
            # last ceil-mode window would start in the end padding, its float16 kernels keep
            # that window while its float32 kernels and the ONNX rule drop it)
            attrs["ceil_mode"] = 1
        iv = self.iv[x.name]
        if op == "AveragePool":
            if self.bool():
                attrs["count_include_pad"] = self.int(0, 1)
            iv = (min(iv[0], 0.0), max(iv[1], 0.0))
        self.node(op, [x], attrs, iv=iv)

    def reduce(self, op: str) -> None:
        x = self.pick(op, lambda v: len(v.type.shape) >= 1)
        shape = x.type.shape
        r = len(shape)
        axes = [i for i in range(r) if self.bool()] or [self.int(0, r - 1)]
        with_axes = self.cfg.allow_constants and not self.rarely(6)
        if not with_axes:
            axes = list(range(r))
        bound = _mag(self.iv[x.name])
        iv = self.iv[x.name]
        if op == "ReduceSum":
            reduced = [shape[a] for a in axes]
            if not _is_static(reduced):
                raise _Skip
            nred = int(np.prod(reduced)) if reduced else 1
            bound *= nred
            iv = (-bound, bound) if nred > 1 else iv
            if bound > VALUE_BOUND:
                raise _Skip
        inputs: list[Value] = [x]
        if with_axes:
            if self.rarely(10) and len(axes) == r:
                inputs.append(self.int_const([]))  # empty axes: reduce over all
            else:
                inputs.append(self.int_const([a - r if self.bool() else a for a in axes]))
        attrs: dict = {}
        keep = self.int(0, 1)
        if keep == 0 or self.rarely():
            attrs["keepdims"] = keep
        self.node(op, inputs, attrs, iv=iv)

    def layout(self, op: str) -> None:
        getattr(self, "op_" + op.lower())()

    def op_reshape(self) -> None:
        if not self.cfg.allow_constants:
            raise _Skip
        x = self.pick("Reshape")
        shape = x.type.shape
        r = len(shape)
        syms = [i for i, d in enumerate(shape) if isinstance(d, str)]
        p = self.int(syms[-1] + 1 if syms else 0, r)
        suffix = shape[p:]
        P = int(np.prod(suffix)) if suffix else 1
        k = self.int(0 if P == 1 else 1, 3)
        if p + k > _MAX_RANK:
            raise _Skip
        new: list[int] = []
        rem = P
        for _ in range(k - 1):
            d = self.choice(_divisors(rem))
            new.append(d)
            rem //= d
        if k:
            new.append(rem)
        target = [0 if isinstance(d, str) or self.bool() else d for d in shape[:p]] + new
        if target and self.rarely(3):
            # one -1 (inferred dim); on a symbol only if it is the only symbol.
            cands = [i for i in range(p, len(target))] + ([syms[0]] if len(syms) == 1 else [])
            if cands:
                target[self.choice(cands)] = -1
        self.node("Reshape", [x, self.int_const(target)], iv=self.iv[x.name])

    def op_transpose(self) -> None:
        x = self.pick("Transpose", lambda v: len(v.type.shape) >= 1)
        r = len(x.type.shape)
        attrs = {}
        if not self.rarely(5):
            attrs["perm"] = list(self.draw(st.permutations(range(r))))
        self.node("Transpose", [x], attrs, iv=self.iv[x.name])

    def op_flatten(self) -> None:
        x = self.pick("Flatten", lambda v: len(v.type.shape) >= 1)
        r = len(x.type.shape)
        attrs = {}
        if not self.rarely(5):
            attrs["axis"] = self.int(-r, r)
        self.node("Flatten", [x], attrs, iv=self.iv[x.name])

    def op_squeeze(self) -> None:
        def has_one(v: Value) -> bool:
            return any(d == 1 for d in v.type.shape)

        x = self.pick("Squeeze", has_one)
        shape = x.type.shape
        r = len(shape)
        ones = [i for i, d in enumerate(shape) if d == 1]
        if self.cfg.allow_constants and not (_is_static(shape) and self.rarely(5)):
            axes = [i for i in ones if self.bool()] or [self.choice(ones)]
            self.node("Squeeze", [x, self.int_const([a - r if self.bool() else a for a in axes])],
                      iv=self.iv[x.name])
        elif _is_static(shape):
            self.node("Squeeze", [x], iv=self.iv[x.name])
        else:
            raise _Skip

    def op_unsqueeze(self) -> None:
        if not self.cfg.allow_constants:
            raise _Skip
        x = self.pick("Unsqueeze", lambda v: len(v.type.shape) < _MAX_RANK)
        r = len(x.type.shape)
        k = self.int(1, min(2, _MAX_RANK - r))
        r2 = r + k
        free = list(range(r2))
        axes = []
        for _ in range(k):
            a = free.pop(self.int(0, len(free) - 1))
            axes.append(a - r2 if self.bool() else a)
        self.node("Unsqueeze", [x, self.int_const(axes)], iv=self.iv[x.name])

    def concat_split(self, op: str) -> None:
        if op == "Split":
            return self.split()
        x = self.pick(op, lambda v: len(v.type.shape) >= 1)
        dt, shape = x.type.dtype, x.type.shape
        r = len(shape)
        axis = self.int(0, r - 1)
        others = [shape[i] for i in range(r) if i != axis]
        cands = self.values(op, lambda v: v.type.dtype is dt and len(v.type.shape) == r
                            and all(v.type.shape[i] == shape[i] for i in range(r) if i != axis))
        n = self.int(1, 3)
        parts: list[Value] = []
        for _ in range(n):
            if self.cfg.allow_constants and _is_static(others) and self.rarely(3):
                cs = list(shape)
                cs[axis] = self.int(1, 3)
                parts.append(self.weight(cs, dt)[0])
            else:
                parts.append(self.choice(cands))
        parts.insert(self.int(0, n), x)
        lo = min(self.iv[v.name][0] for v in parts)
        hi = max(self.iv[v.name][1] for v in parts)
        self.node("Concat", parts, {"axis": axis - r if self.bool() else axis}, iv=(lo, hi))

    def split(self) -> None:
        def splittable(v: Value) -> bool:
            return any(isinstance(d, int) and d >= 2 for d in v.type.shape)

        x = self.pick("Split", splittable)
        shape = x.type.shape
        r = len(shape)
        axis = self.choice([i for i, d in enumerate(shape) if isinstance(d, int) and d >= 2])
        d = shape[axis]
        inputs: list[Value] = [x]
        attrs: dict = {}
        if axis != 0 or self.rarely():
            attrs["axis"] = axis - r if self.bool() else axis
        counts = [m for m in range(2, min(d, 4) + 1) if (m - 1) * -(-d // m) < d]
        if self.cfg.allow_constants and (not counts or self.bool()):
            k = self.int(2, min(d, 4))
            sizes, rem = [], d
            for i in range(k - 1):
                s = self.int(1, rem - (k - 1 - i))
                sizes.append(s)
                rem -= s
            sizes.append(rem)
            inputs.append(self.int_const(sizes))
        elif counts:
            k = self.choice(counts)
            attrs["num_outputs"] = k
        else:
            raise _Skip
        self.node("Split", inputs, attrs, iv=self.iv[x.name], num_outputs=k)

    def softmax(self, op: str) -> None:
        x = self.pick(op, lambda v: len(v.type.shape) >= 1)
        r = len(x.type.shape)
        attrs = {}
        axis = r - 1
        if self.bool():
            axis = self.int(0, r - 1)
            attrs["axis"] = axis - r if self.bool() else axis
        if op == "Softmax":
            iv = (0.0, 1.0)
        else:
            d = x.type.shape[axis]
            n = d if isinstance(d, int) else MAX_SYMBOL_SIZE
            lo, hi = self.iv[x.name]
            iv = (lo - hi - math.log(max(n, 1)), 0.0)
            if _mag(iv) > VALUE_BOUND:
                raise _Skip
        self.node(op, [x], attrs, iv=iv)

    def norm(self, op: str) -> None:
        if op == "BatchNormalization":
            return self.batchnorm()
        cands = [(v, a) for v in self.values(op, lambda v: len(v.type.shape) >= 1)
                 for a in range(len(v.type.shape)) if _is_static(v.type.shape[a:])]
        if not cands:
            raise _Skip
        x, axis = self.choice(cands)
        dt, shape = x.type.dtype, x.type.shape
        r = len(shape)
        ns = list(shape[axis:])
        nel = int(np.prod(ns))
        eps = self.choice((1e-5, 1e-3, 1e-2))
        # |normalized| <= sqrt(nel - 1) for nel >= 2, and 0 for nel == 1
        zb = math.sqrt(max(nel - 1, 0))
        scale_shape = ns if not self.rarely(4) else [1 if self.bool() else d for d in ns]
        sc, siv, sdata = self.weight(scale_shape, dt)
        if sdata is not None and zb * _mag(siv) > VALUE_BOUND / 2:
            # rescale the constant
            factor = (VALUE_BOUND / 2) / (zb * _mag(siv))
            self.g.set_constant_data(sc, TensorData((sdata * factor).astype(dt.numpy), dt))
            arr = sc.const.numpy()  # type: ignore[union-attr]
            siv = (float(arr.min()), float(arr.max()))
            self.iv[sc.name] = siv
        inputs = [x, sc]
        bound = zb * _mag(siv)
        if self.bool():
            b, biv, _ = self.weight(ns, dt, -0.5, 0.5)
            inputs.append(b)
            bound += _mag(biv)
        if bound > VALUE_BOUND:
            raise _Skip
        attrs: dict = {}
        if axis != r - 1 or self.rarely():
            attrs["axis"] = axis - r if self.bool() else axis
        if eps != 1e-5 or self.rarely():
            attrs["epsilon"] = eps
        self.node("LayerNormalization", inputs, attrs, iv=(-bound, bound), num_outputs=1)

    def batchnorm(self) -> None:
        if not self.cfg.allow_constants:
            raise _Skip
        x = self.pick("BatchNormalization", lambda v: len(v.type.shape) >= 2 and isinstance(v.type.shape[1], int))
        dt = x.type.dtype
        C = x.type.shape[1]
        eps = self.choice((1e-5, 1e-3))
        scale = self.rng.uniform(0.5, 1.5, C) * np.where(self.rng.uniform(size=C) < 0.2, -1.0, 1.0)
        bias = self.rng.uniform(-0.5, 0.5, C)
        mean = self.rng.uniform(-0.5, 0.5, C)
        var = self.rng.uniform(0.5, 2.0, C)
        lo, hi = self.iv[x.name]
        dev = np.maximum(np.abs(lo - mean), np.abs(hi - mean)) / np.sqrt(var + eps)
        per = dev * np.abs(scale)
        if float(np.max(per + np.abs(bias))) > VALUE_BOUND / 2:
            scale = scale * ((VALUE_BOUND / 2 - 0.5) / float(np.max(per)))
        params = [self.const(a, dt, pool=False) for a in (scale, bias, mean, var)]
        sa, ba, ma, va = (p.const.numpy().astype(np.float64) for p in params)  # type: ignore[union-attr]
        dev = np.maximum(np.abs(lo - ma), np.abs(hi - ma)) / np.sqrt(va + eps)
        bound = float(np.max(dev * np.abs(sa) + np.abs(ba))) * 1.001
        if bound > VALUE_BOUND:
            raise _Skip
        attrs: dict = {}
        if eps != 1e-5 or self.rarely():
            attrs["epsilon"] = eps
        if self.rarely(6):
            attrs["momentum"] = 0.8
        if self.rarely(6):
            attrs["training_mode"] = 0
        self.node("BatchNormalization", [x, *params], attrs, iv=(-bound, bound), num_outputs=1)

    def misc(self, op: str) -> None:
        x = self.pick(op)
        if op == "Identity":
            self.node("Identity", [x], iv=self.iv[x.name])
            return
        targets = list(self.cfg.dtypes)
        to = self.choice(targets)
        if to is x.type.dtype and F64 not in targets and self.bool():
            # a lossless round trip through f64
            mid = self.node("Cast", [x], {"to": _ONNX_DTYPE[F64]}, iv=self.iv[x.name], pool=False)
            self.node("Cast", [mid.output], {"to": _ONNX_DTYPE[to]}, iv=self.iv[x.name])
            return
        iv = self.iv[x.name]
        if to is F16:
            iv = (float(np.float16(iv[0])), float(np.float16(iv[1])))
        self.node("Cast", [x], {"to": _ONNX_DTYPE[to]}, iv=iv)

    _FAMILY_METHOD = {
        "unary": "unary", "binary": "binary", "matmul": "matmul", "conv": "conv", "pool": "pool_op",
        "reduce": "reduce", "layout": "layout", "concat_split": "concat_split", "softmax": "softmax",
        "norm": "norm", "misc": "misc",
    }

    # ---------------------------------------------------------------- inputs, outputs
    def input_shape(self, kind: str) -> list[Dim]:
        sym = self.cfg.symbolic
        batch: Dim = "N" if sym else self.int(1, 3)
        if kind == "any":
            r = self.int(1, 4)
            dims: list[Dim] = [self.int(1, 5) for _ in range(r)]
            if sym:
                dims[0] = "N"
            return dims
        if kind == "image":
            spatial = [self.int(1, 8) for _ in range(1 if self.rarely(4) else 2)]
            return [batch, self.int(1, 4), *spatial]
        if kind == "matrix":
            return [batch if sym else self.int(1, 6), self.int(1, 8)]
        if kind == "seq":
            s: Dim = "S" if sym and self.bool() else self.int(1, 5)
            return [batch, s, self.int(1, 8)]
        return []  # scalar

    def make_inputs(self) -> None:
        fams = {f for f, _ in self.cfg.families}
        kinds = ["any", "image", "matrix", "seq", "scalar"]
        if fams and fams <= {"conv", "pool"}:
            kinds = ["image"]
        elif fams and fams <= {"matmul"}:
            kinds = ["matrix", "any", "image", "seq"]
        n = self.int(1, 3)
        for i in range(n):
            # A scalar input is rare, and never the first one (ops need a tensor to start from).
            common = kinds[:-1] if kinds[-1] == "scalar" else kinds
            kind = self.choice(common if i == 0 or self.int(0, 7) else kinds)
            dt = self.choice(self.cfg.dtypes)
            self.add_input(TensorType(dt, tuple(self.input_shape(kind))))

    def choose_outputs(self) -> None:
        nodes = self.g.nodes
        if not nodes:
            self.g.outputs = [self.choice(self.g.inputs)]
            return
        last = [o for o in nodes[-1].outputs if o is not None]
        first = self.choice(last)
        outs = [first]
        for n in nodes:
            for o in n.outputs:
                if o is None or o is first or o.uses():
                    continue
                if self.int(0, 3) > 0:
                    outs.append(o)
        if self.rarely(5):
            cand = [o for n in nodes for o in n.outputs if o is not None and o not in outs]
            if cand:
                outs.append(self.choice(cand))
        if self.rarely(12):
            outs.append(self.choice(self.g.inputs))
        consts = [c for c in self.g.constants if c.type.dtype.is_float]
        if consts and self.rarely(16):
            outs.append(self.choice(consts))
        if len(outs) > 1:
            i = self.int(0, len(outs) - 1)
            outs[0], outs[i] = outs[i], outs[0]
        self.g.outputs = outs

    def step(self, forced: bool) -> bool:
        """One step: unless ``forced``, first draw whether to go on (shrinks to stopping);
        then draw an op and apply it if it fits (else undo what was made)."""
        if not forced and self.int(0, self.more) == 0:
            return False
        fam, ops = self.choice(self.families)
        op = self.choice(ops)
        mark = (len(self.created), len(self.pool))
        try:
            getattr(self, self._FAMILY_METHOD[fam])(op)
        except _Skip:
            self.rollback(mark)
        return True

    def run(self) -> Graph:
        cfg = self.cfg
        self.families = cfg.families
        # Steps go on with probability more/(more+1): about `more` steps on average.
        lo, hi = cfg.min_nodes, cfg.max_nodes
        self.more = max(1, round(min((lo + hi) / 2 + 2, lo + 20)))
        self.make_inputs()
        steps, limit = 0, 6 * hi + 20
        forced_step, free_step = _step(self, True), _step(self, False)
        while len(self.g) < hi and steps < limit:
            steps += 1
            # each step is drawn as its own strategy, so the shrinker can delete it whole
            if not self.draw(forced_step if len(self.g) < lo else free_step):
                break
        if len(self.g) < lo:
            reject()
        self.choose_outputs()
        self.g._journal.clear()
        return self.g


@st.composite
def _step(draw, builder: _Builder, forced: bool) -> bool:
    builder.draw = draw
    return builder.step(forced)


# ---------------------------------------------------------------------------- public strategies
@st.composite
def _graphs(draw, cfg: _Config) -> Graph:
    return _Builder(draw, cfg).run()


def graphs(min_nodes: int = 1, max_nodes: int = 30, ops: Optional[Iterable[str]] = None, symbolic: bool = False,
           dtypes: Sequence[Union[DType, str]] = (F32,), allow_constants: bool = True) -> st.SearchStrategy[Graph]:
    """A strategy of random valid graphs (see the module docstring for what they hold).

    min_nodes, max_nodes: bounds on the number of nodes (a graph with few applicable ops
        may be rejected when it cannot reach ``min_nodes``).
    ops: op types and/or family names (keys of `FAMILIES`) to draw from; default all of
        `ALL_OPS`. Only these op types appear in the graphs.
    symbolic: graph inputs get the symbolic dims of `SYMBOLS` ("N" as dim 0 of every
        input); bind them to sizes in 1..`MAX_SYMBOL_SIZE` to run the graph.
    dtypes: float element types graph inputs are drawn from (f32, f16, f64); Cast converts
        between them. Ops onnxruntime cannot run in a dtype are not applied in it.
    allow_constants: whether graphs may hold constants (initializers). Without them,
        weights become extra graph inputs and ops that need a constant input (Reshape,
        Unsqueeze, BatchNormalization, axes of reductions) are left out or use their
        input-less form.
    """
    return _graphs(_config(min_nodes, max_nodes, ops, symbolic, dtypes, allow_constants))


def symbols_of(graph: Graph) -> list[str]:
    """The symbolic dims of ``graph``'s inputs, sorted: those a caller must bind to run it."""
    out = {d for v in graph.inputs if v.type.shape is not None for d in v.type.shape if isinstance(d, str)}
    return sorted(out)


def inputs_for(graph: Graph, seed: int = 0, dims: Optional[Mapping[str, int]] = None) -> dict:
    """Random inputs for ``graph``: float elements uniform in [-1, 1]; symbolic dims take
    their sizes from ``dims`` (default 2). Same as `graphopt.testing.random_inputs`."""
    return random_inputs(graph, seed=seed, dims=dims)


@st.composite
def _graph_and_inputs(draw, cfg: _Config, max_symbol_size: int):
    g = draw(_graphs(cfg))
    dims = {s: draw(_ints(1, max_symbol_size)) for s in symbols_of(g)}
    seed = draw(_SEEDS)
    return g, random_inputs(g, seed=seed, dims=dims)


def graph_and_inputs(min_nodes: int = 1, max_nodes: int = 30, ops: Optional[Iterable[str]] = None,
                     symbolic: bool = False, dtypes: Sequence[Union[DType, str]] = (F32,),
                     allow_constants: bool = True, max_symbol_size: int = 4):
    """A strategy of ``(graph, inputs)``: a graph as `graphs` draws it (same arguments) and
    a dict of inputs by name, every float element uniform in [-1, 1] (numpy, from a drawn
    seed), with each symbolic dim bound to a size in 1..``max_symbol_size``."""
    if not 1 <= max_symbol_size <= MAX_SYMBOL_SIZE:
        raise ValueError(f"max_symbol_size must be in 1..{MAX_SYMBOL_SIZE}")
    return _graph_and_inputs(_config(min_nodes, max_nodes, ops, symbolic, dtypes, allow_constants),
                             max_symbol_size)


def shapes(min_rank: int = 0, max_rank: int = 4, max_dim: int = 5,
           symbols: Sequence[str] = ()) -> st.SearchStrategy[tuple[Dim, ...]]:
    """A strategy of shapes: ``min_rank``..``max_rank`` dims, each an int in 1..``max_dim``
    or (when ``symbols`` is given) sometimes one of ``symbols``."""
    dim: st.SearchStrategy = st.integers(1, max_dim)
    if symbols:
        dim = st.one_of(dim, st.sampled_from(list(symbols)))
    return st.lists(dim, min_size=min_rank, max_size=max_rank).map(tuple)


def tensor_types(dtypes: Sequence[Union[DType, str]] = (F32,), min_rank: int = 0, max_rank: int = 4,
                 max_dim: int = 5, symbols: Sequence[str] = ()) -> st.SearchStrategy[TensorType]:
    """A strategy of `TensorType`: a dtype of ``dtypes`` and a shape as `shapes` draws it."""
    dts = [d if isinstance(d, DType) else DType.parse(d) for d in dtypes]
    return st.builds(TensorType, st.sampled_from(dts), shapes(min_rank, max_rank, max_dim, symbols))
