"""Activations: the ones relax lacks written as TE over the input (LeakyRelu, Elu, Selu,
HardSwish...), Gelu and PRelu; graphopt.SiLU and graphopt.SwiGLU."""

from __future__ import annotations

from .helpers import const, dtype_of, rx, scalar, tirx
from .registry import register_lowering


def _act(fn):
    """An activation written as TE over the input tensor (fn(x_elem, dtype) -> elem)."""

    def f(ctx, n):
        from tvm import te

        x = n.inputs[0]
        dt = dtype_of(x)
        attrs = {k: ctx.attr(n, k) for k in ("alpha", "beta", "gamma", "lambd", "bias")}

        def compute(t):
            return te.compute(t.shape, lambda *i: fn(t(*i), dt, attrs), name=n.op_type.lower())

        return ctx.te(compute, ctx.get(x))

    return f


register_lowering("LeakyRelu")(_act(lambda x, dt, a: tirx().Select(x >= const(0, dt), x, x * const(a["alpha"], dt))))


register_lowering("Elu")(_act(lambda x, dt, a: tirx().Select(x >= const(0, dt), x, const(a["alpha"], dt) * (tirx().exp(x) - const(1, dt)))))


register_lowering("Celu")(_act(lambda x, dt, a: tirx().max(x, const(0, dt)) + tirx().min(
    const(0, dt), const(a["alpha"], dt) * (tirx().exp(x / const(a["alpha"], dt)) - const(1, dt)))))


register_lowering("Selu")(_act(lambda x, dt, a: const(a["gamma"], dt) * tirx().Select(
    x > const(0, dt), x, const(a["alpha"], dt) * (tirx().exp(x) - const(1, dt)))))


register_lowering("HardSigmoid")(_act(lambda x, dt, a: tirx().max(const(0, dt), tirx().min(const(1, dt), const(a["alpha"], dt) * x + const(a["beta"], dt)))))


register_lowering("HardSwish")(_act(lambda x, dt, a: x * tirx().max(const(0, dt), tirx().min(const(1, dt), x / const(6, dt) + const(0.5, dt)))))


register_lowering("Softsign")(_act(lambda x, dt, a: x / (const(1, dt) + tirx().abs(x))))


register_lowering("Softplus")(_act(lambda x, dt, a: tirx().log(const(1, dt) + tirx().exp(x))))


register_lowering("Mish")(_act(lambda x, dt, a: x * tirx().tanh(tirx().log(const(1, dt) + tirx().exp(x)))))


register_lowering("ThresholdedRelu")(_act(lambda x, dt, a: tirx().Select(x > const(a["alpha"], dt), x, const(0, dt))))


register_lowering("Shrink")(_act(lambda x, dt, a: tirx().Select(
    x < const(-a["lambd"], dt), x + const(a["bias"], dt),
    tirx().Select(x > const(a["lambd"], dt), x - const(a["bias"], dt), const(0, dt)))))


@register_lowering("Gelu")
def _gelu(ctx, n):
    op = rx().op.nn.gelu_tanh if ctx.attr(n, "approximate", "none") == "tanh" else rx().op.nn.gelu
    return ctx.emit(op(ctx.get(n.inputs[0])))


@register_lowering("PRelu")
def _prelu(ctx, n):
    x, s = ctx.get(n.inputs[0]), ctx.get(n.inputs[1])
    zero = scalar(ctx, 0, dtype_of(n.inputs[0]))
    return ctx.emit(rx().op.where(ctx.emit(rx().op.less(x, zero)), ctx.emit(rx().op.multiply(x, s)), x))


# graphopt's named elementwise ops: relax ops in place (not their decomposition as a kernel
# of its own), so TVM fuses them into the matmul epilogues around them as it did the
# Sigmoid and Mul they replace.
@register_lowering("SiLU", domain="graphopt")
def _silu(ctx, n):
    R = rx().op
    x = ctx.get(n.inputs[0])
    return ctx.emit(R.multiply(x, R.sigmoid(x)))


@register_lowering("SwiGLU", domain="graphopt")
def _swiglu(ctx, n):
    R = rx().op
    gate, up = ctx.get(n.inputs[0]), ctx.get(n.inputs[1])
    return ctx.emit(R.multiply(R.multiply(gate, R.sigmoid(gate)), up))
