"""Elementwise ops: unary and binary relax ops, with ONNX's semantics where relax differs
(integer Div truncates, Sign keeps NaN, Pow of integers through float64, float32 ->
bfloat16 rounding on the bits)."""

from __future__ import annotations

import numpy as np

from ...ir import DType
from .helpers import const, dtype_of, isnan, rx, scalar, tirx, tvm_dtype
from .registry import register_lowering


def _unary(op_name):
    def f(ctx, n):
        op = getattr(rx().op, op_name) if "." not in op_name else getattr(rx().op.nn, op_name.split(".")[1])
        return ctx.emit(op(ctx.get(n.inputs[0])))

    return f


for _onnx, _rx in [("Abs", "abs"), ("Neg", "negative"), ("Sqrt", "sqrt"), ("Floor", "floor"), ("Ceil", "ceil"),
                   ("Round", "round"), ("Sigmoid", "sigmoid"), ("Exp", "exp"), ("Log", "log"), ("Sign", "sign"),
                   ("Sin", "sin"), ("Cos", "cos"), ("Tan", "tan"), ("Asin", "asin"), ("Acos", "acos"),
                   ("Atan", "atan"), ("Sinh", "sinh"), ("Cosh", "cosh"), ("Tanh", "tanh"), ("Asinh", "asinh"),
                   ("Acosh", "acosh"), ("Atanh", "atanh"), ("Erf", "erf"), ("Not", "logical_not"),
                   ("BitwiseNot", "bitwise_not"), ("Relu", "nn.relu")]:
    register_lowering(_onnx)(_unary(_rx))


@register_lowering("IsNaN")
def _isnan(ctx, n):
    return ctx.emit(isnan(ctx.get(n.inputs[0])))


@register_lowering("Sign")
def _sign(ctx, n):
    x = n.inputs[0]
    e = ctx.get(x)
    if not x.type.dtype.is_float:
        return ctx.emit(rx().op.sign(e))
    return ctx.emit(rx().op.where(isnan(e), e, rx().op.sign(e)))  # TVM's sign(NaN) is 0


@register_lowering("Reciprocal")
def _reciprocal(ctx, n):
    x = n.inputs[0]
    return ctx.emit(rx().op.divide(scalar(ctx, 1.0, dtype_of(x)), ctx.get(x)))


@register_lowering("Identity")
def _identity(ctx, n):
    return ctx.get(n.inputs[0])


@register_lowering("Dropout")
def _dropout(ctx, n):
    training = ctx.const_of(n.inputs[2]) if len(n.inputs) > 2 and n.inputs[2] is not None else None
    if len(n.inputs) > 2 and n.inputs[2] is not None and (training is None or bool(np.asarray(training))):
        raise ctx.fail("Dropout in training mode is not supported")
    x = ctx.get(n.inputs[0])
    outs = [x]
    if len(n.outputs) > 1 and n.outputs[1] is not None:
        outs.append(ctx.emit(rx().op.full(ctx.shape_of(n.inputs[0]), rx().const(True, "bool"), "bool")))
    return outs


def _binary(op_name):
    def f(ctx, n):
        return ctx.emit(getattr(rx().op, op_name)(ctx.get(n.inputs[0]), ctx.get(n.inputs[1])))

    return f


for _onnx, _rx in [("Add", "add"), ("Sub", "subtract"), ("Mul", "multiply"), ("Equal", "equal"), ("Less", "less"),
                   ("LessOrEqual", "less_equal"), ("Greater", "greater"), ("GreaterOrEqual", "greater_equal"),
                   ("And", "logical_and"), ("Or", "logical_or"), ("Xor", "logical_xor"),
                   ("BitwiseAnd", "bitwise_and"), ("BitwiseOr", "bitwise_or"), ("BitwiseXor", "bitwise_xor")]:
    register_lowering(_onnx)(_binary(_rx))


@register_lowering("Div")
def _div(ctx, n):
    a, b = ctx.get(n.inputs[0]), ctx.get(n.inputs[1])
    if n.inputs[0].type.dtype.is_float:
        return ctx.emit(rx().op.divide(a, b))
    # ONNX integer division truncates toward zero: floor division, plus one where the
    # remainder is non-zero and the signs differ.
    R = rx()
    q = ctx.emit(R.op.floor_divide(a, b))
    if not n.inputs[0].type.dtype.is_signed_int:
        return q
    zero = R.const(0, dtype_of(n.inputs[0]))
    rem = ctx.emit(R.op.subtract(a, R.op.multiply(q, b)))
    fix = ctx.emit(R.op.logical_and(R.op.not_equal(rem, zero),
                                    R.op.logical_xor(R.op.less(a, zero), R.op.less(b, zero))))
    return ctx.emit(R.op.add(q, R.op.astype(fix, dtype_of(n.inputs[0]))))


@register_lowering("Mod")
def _mod(ctx, n):
    a, b = ctx.get(n.inputs[0]), ctx.get(n.inputs[1])
    fmod = ctx.attr(n, "fmod", 0)
    if fmod or n.inputs[0].type.dtype.is_float:
        if n.inputs[0].type.dtype.is_float:
            # C's fmod, x - y * trunc(x / y) (the dividend's sign): TVM 0.27 has no
            # topi.trunc_mod, and LLVM codegen takes no tirx.fmod
            R = rx().op
            return ctx.emit(R.subtract(a, R.multiply(b, R.trunc(R.divide(a, b)))))
        return ctx.emit(rx().op.mod(a, b))
    return ctx.emit(rx().op.floor_mod(a, b))


@register_lowering("Pow")
def _pow(ctx, n):
    x, y = n.inputs
    if not x.type.dtype.is_float:
        # TVM's power takes floats only; onnxruntime computes integer powers through
        # double too (std::pow) and casts back.
        R = rx()
        xf = ctx.emit(R.op.astype(ctx.get(x), "float64"))
        yf = ctx.emit(R.op.astype(ctx.get(y), "float64"))
        return ctx.emit(R.op.astype(R.op.power(xf, yf), dtype_of(x)))
    ye = ctx.get(y)
    if y.type.dtype != x.type.dtype:
        ye = ctx.emit(rx().op.astype(ye, dtype_of(x)))
    c = ctx.const_of(y)
    if c is not None and c.size == 1 and float(np.asarray(c).reshape(-1)[0]) == 2.0 and x.type.dtype.is_float:
        xe = ctx.get(x)
        return ctx.emit(rx().op.multiply(xe, xe))
    return ctx.emit(rx().op.power(ctx.get(x), ye))


@register_lowering("BitShift")
def _bitshift(ctx, n):
    d = ctx.attr(n, "direction")
    op = rx().op.left_shift if d == "LEFT" else rx().op.right_shift
    return ctx.emit(op(ctx.get(n.inputs[0]), ctx.get(n.inputs[1])))


def _variadic(op_name, mean=False):
    def f(ctx, n):
        ins = [ctx.get(v) for v in n.inputs if v is not None]
        acc = ins[0]
        for e in ins[1:]:
            acc = ctx.emit(getattr(rx().op, op_name)(acc, e))
        if mean:
            acc = ctx.emit(rx().op.divide(acc, scalar(ctx, float(len(ins)), dtype_of(n.inputs[0]))))
        elif len(ins) == 1:
            return ins[0]
        return acc

    return f


register_lowering("Sum")(_variadic("add"))


register_lowering("Max")(_variadic("maximum"))


register_lowering("Min")(_variadic("minimum"))


register_lowering("Mean")(_variadic("add", mean=True))


@register_lowering("Where")
def _where(ctx, n):
    c, x, y = (ctx.get(v) for v in n.inputs)
    return ctx.emit(rx().op.where(c, x, y))


@register_lowering("Clip")
def _clip(ctx, n):
    x = ctx.get(n.inputs[0])
    dt = dtype_of(n.inputs[0])
    for i, op in ((1, rx().op.maximum), (2, rx().op.minimum)):
        if len(n.inputs) > i and n.inputs[i] is not None:
            b = ctx.get(n.inputs[i])
            x = ctx.emit(op(x, b))
    return x


@register_lowering("Cast")
def _cast(ctx, n):
    to = n.outputs[0].type.dtype
    x = n.inputs[0]
    e = ctx.get(x)
    if x.type.dtype.is_float and to is DType.BOOL:
        return ctx.emit(rx().op.not_equal(e, scalar(ctx, 0.0, dtype_of(x))))
    if to is DType.BFLOAT16 and x.type.dtype is not DType.BFLOAT16:
        return _to_bfloat16(ctx, e if x.type.dtype is DType.FLOAT32 else ctx.emit(rx().op.astype(e, "float32")))
    return ctx.emit(rx().op.astype(e, tvm_dtype(to)))


def _to_bfloat16(ctx, e):
    """float32 -> bfloat16 rounding to nearest even on the bits, NaN kept quiet. A plain
    astype is lost when TVM fuses it with a cast back to float32 (the simplifier drops the
    pair, so 1 + 2**-9 came back unrounded)."""
    from tvm import te

    tir = tirx()

    def f(t):
        def one(*i):
            b = tir.reinterpret("uint32", t(*i))
            up = ((b >> tir.const(16, "uint32")) & tir.const(1, "uint32")) + tir.const(0x7FFF, "uint32")
            r = tir.Select(t(*i) != t(*i), (b >> tir.const(16, "uint32")) | tir.const(0x40, "uint32"),
                           (b + up) >> tir.const(16, "uint32"))
            return tir.reinterpret("bfloat16", tir.Cast("uint16", r))
        return te.compute(t.shape, one, name="to_bfloat16")

    return ctx.te(f, e)


@register_lowering("CastLike")
def _castlike(ctx, n):
    return _cast(ctx, n)


@register_lowering("IsInf")
def _isinf(ctx, n):
    from tvm import te

    x = n.inputs[0]
    dt = dtype_of(x)
    neg, pos = ctx.attr(n, "detect_negative", 1), ctx.attr(n, "detect_positive", 1)

    def compute(t):
        def f(*i):
            v = t(*i)
            inf = tirx().isinf(v)
            if neg and pos:
                return inf
            if pos:
                return tirx().all(inf, v > const(0, dt))
            if neg:
                return tirx().all(inf, v < const(0, dt))
            return tirx().const(False, "bool")

        return te.compute(t.shape, f, name="isinf")

    return ctx.te(compute, ctx.get(x))
