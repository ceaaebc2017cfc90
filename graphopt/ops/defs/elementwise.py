"""Elementwise ops: unary math and activations, binary/variadic arithmetic, comparisons,
logic and bitwise ops, Clip, Where is in tensor.py."""

from __future__ import annotations

from ...ir import AttrKind
from ...ir.types import DType, TensorType
from .. import flops
from ..registry import REQUIRED, AttrSpec, InferContext, PatternKind, register, set_traits
from ._shapes import broadcast, check_dtype, same_dtype
from ._specs import ANY, BOOL, F, F3, INT, NUM, SINT, UINT, float_attr, int_attr, types


def _unary(op: str, allowed: frozenset, names=("X", "Y"), attrs=None, out_dtype=None):
    def infer(ctx: InferContext):
        dt = check_dtype(ctx, 0, allowed)
        return [TensorType(out_dtype or dt, ctx.shape(0))]

    infer.__name__ = f"infer_{op.lower()}"
    register(op, [names[0]], [names[1]], attrs)(infer)


# ---------------------------------------------------------------- unary math
for _op, _allowed in [("Abs", NUM), ("Neg", SINT | F), ("Sqrt", F), ("Reciprocal", F), ("Floor", F), ("Ceil", F),
                      ("Round", F3), ("Sigmoid", F), ("HardSwish", F3), ("Relu", SINT | F), ("Softplus", F3),
                      ("Mish", F3)]:
    _unary(_op, _allowed)

for _op, _allowed in [("Exp", F), ("Log", F), ("Sign", NUM), ("Sin", F3), ("Cos", F3), ("Tan", F3), ("Asin", F3),
                      ("Acos", F3), ("Atan", F3), ("Sinh", F3), ("Cosh", F3), ("Tanh", F), ("Asinh", F3),
                      ("Acosh", F3), ("Atanh", F3), ("Erf", F), ("Softsign", F3)]:
    _unary(_op, _allowed, ("input", "output"))

_unary("HardSigmoid", F3, attrs={"alpha": float_attr(0.2), "beta": float_attr(0.5)})
_unary("LeakyRelu", F, attrs={"alpha": float_attr(0.01)})
_unary("Elu", F3, attrs={"alpha": float_attr(1.0)})
_unary("Selu", F3, attrs={"alpha": float_attr(1.67326319217681884765625), "gamma": float_attr(1.05070102214813232421875)})
_unary("Celu", types("f32"), attrs={"alpha": float_attr(1.0)})
_unary("Gelu", F, attrs={"approximate": AttrSpec(AttrKind.STRING, "none")})
_unary("ThresholdedRelu", F3, attrs={"alpha": float_attr(1.0)})
_unary("Shrink", F3 | INT, ("input", "output"), attrs={"bias": float_attr(0.0), "lambd": float_attr(0.5)})
_unary("Not", BOOL)
_unary("BitwiseNot", INT)
_unary("IsNaN", F, out_dtype=DType.BOOL)
_unary("IsInf", F, attrs={"detect_negative": int_attr(1), "detect_positive": int_attr(1)}, out_dtype=DType.BOOL)


# ---------------------------------------------------------------- binary
def _binary(op: str, allowed: frozenset, names=("A", "B", "C"), out_dtype=None, attrs=None):
    def infer(ctx: InferContext):
        dt = same_dtype(ctx, [0, 1])
        check_dtype(ctx, 0, allowed)
        return [TensorType(out_dtype or dt, broadcast(ctx, [ctx.shape(0), ctx.shape(1)]))]

    infer.__name__ = f"infer_{op.lower()}"
    register(op, list(names[:2]), [names[2]], attrs)(infer)


for _op in ("Add", "Sub", "Mul", "Div"):
    _binary(_op, NUM)
_binary("Mod", NUM, attrs={"fmod": int_attr(0)})
for _op in ("And", "Or", "Xor"):
    _binary(_op, BOOL, out_dtype=DType.BOOL)
for _op in ("BitwiseAnd", "BitwiseOr", "BitwiseXor"):
    _binary(_op, INT)
_binary("BitShift", UINT, ("X", "Y", "Z"), attrs={"direction": AttrSpec(AttrKind.STRING, REQUIRED)})
_binary("Equal", ANY, out_dtype=DType.BOOL)
for _op in ("Less", "LessOrEqual", "Greater", "GreaterOrEqual"):
    _binary(_op, NUM, out_dtype=DType.BOOL)
# a op b = b op a, elementwise with broadcasting (the matcher tries both orders)
set_traits(["Add", "Mul", "And", "Or", "Xor", "BitwiseAnd", "BitwiseOr", "BitwiseXor", "Equal"], commutative=True)


@register("Pow", ["X", "Y"], ["Z"])
def infer_pow(ctx: InferContext):
    """The base's dtype; the exponent may have another numeric dtype."""
    dt = check_dtype(ctx, 0, F | types("i32 i64"))
    check_dtype(ctx, 1, NUM)
    return [TensorType(dt, broadcast(ctx, [ctx.shape(0), ctx.shape(1)]))]


@register("PRelu", ["X", "slope"], ["Y"])
def infer_prelu(ctx: InferContext):
    """Slope broadcasts unidirectionally to X: the output has X's shape."""
    dt = same_dtype(ctx, [0, 1])
    check_dtype(ctx, 0, F | types("i32 i64 u32 u64"))
    x, s = ctx.shape(0), ctx.shape(1)
    if x is not None and s is not None:
        out = broadcast(ctx, [x, s])
        if len(out) != len(x) or any(isinstance(a, int) and a != b for a, b in zip(x, out)):
            raise ctx.fail(f"slope shape {list(s)} does not broadcast to X's shape {list(x)}")
    return [TensorType(dt, x)]


# ---------------------------------------------------------------- variadic
def _variadic(op: str, allowed: frozenset, out: str):
    def infer(ctx: InferContext):
        dt = same_dtype(ctx, range(ctx.num_inputs))
        check_dtype(ctx, 0, allowed)
        return [TensorType(dt, broadcast(ctx, [ctx.shape(i) for i in range(ctx.num_inputs)]))]

    infer.__name__ = f"infer_{op.lower()}"
    register(op, ["data_0*"], [out])(infer)


_variadic("Max", NUM, "max")
_variadic("Min", NUM, "min")
_variadic("Sum", F, "sum")
_variadic("Mean", F, "mean")
# with two inputs: Max(a, b) = Max(b, a) (NaN propagates from either side), likewise Min, Sum, Mean
set_traits(["Max", "Min", "Sum", "Mean"], commutative=True)


@register("Clip", ["input", "min?", "max?"], ["output"])
def infer_clip(ctx: InferContext):
    dt = same_dtype(ctx, [0, 1, 2])
    check_dtype(ctx, 0, NUM)
    for i in (1, 2):
        if ctx.has_input(i) and ctx.shape(i) is not None and len(ctx.shape(i)) > 1:
            raise ctx.fail(f"Clip {'min' if i == 1 else 'max'} must be a scalar, got shape {list(ctx.shape(i))}")
    return [TensorType(dt, ctx.shape(0))]


# ---------------------------------------------------------------- pattern kinds
set_traits(["Abs", "Acos", "Acosh", "Asin", "Asinh", "Atan", "Atanh", "BitwiseNot", "Ceil", "Celu", "Cos", "Cosh", "Elu",
            "Erf", "Exp", "Floor", "Gelu", "HardSigmoid", "HardSwish", "IsInf", "IsNaN", "LeakyRelu", "Log", "Mish", "Neg",
            "Not", "Reciprocal", "Relu", "Round", "Selu", "Shrink", "Sigmoid", "Sign", "Sin", "Sinh", "Softplus",
            "Softsign", "Sqrt", "Tan", "Tanh", "ThresholdedRelu"], kind=PatternKind.ELEMENTWISE)
set_traits(["Add", "And", "BitShift", "BitwiseAnd", "BitwiseOr", "BitwiseXor", "Clip", "Div", "Equal", "Greater",
            "GreaterOrEqual", "Less", "LessOrEqual", "Max", "Mean", "Min", "Mod", "Mul", "Or", "PRelu", "Pow", "Sub", "Sum",
            "Xor"], kind=PatternKind.BROADCAST)


# ---------------------------------------------------------------- FLOPs (one per element unless set)
for _cost, _ops in [(8, ["Gelu", "Mish"]), (4, ["Erf", "Tanh", "Sigmoid"]), (3, ["HardSwish"]),
                    (2, ["Exp", "Log", "Sqrt", "Pow"])]:
    set_traits(_ops, flops=flops.per_element(_cost))
