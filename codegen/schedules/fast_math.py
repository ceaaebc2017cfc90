"""Vectorizable float32 exp/erf/tanh/sigmoid: LLVM has no vector exp/erf/tanh here, so
``T.exp``/``T.erf`` become one scalar ``expf``/``erff`` call per element, which also blocks
vectorization (softmax, GELU; sigmoid is 1/(1+exp(-x)) in TVM's LLVM rules: SiLU and
SwiGLU ran at about 10 ns an element). They are replaced by the polynomial approximations of TVM's
``topi.fast_exp``/``fast_erf``/``fast_tanh`` (Cephes/Eigen; within a few float32 ulps),
NaN-preserving."""

from __future__ import annotations


_ERF_ALPHA = (-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06, -5.69250639462346e-05,
              -7.34990630326855e-04, -2.95459980854025e-03, -1.60960333262415e-02)


_ERF_BETA = (-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03, -7.37332916720468e-03,
             -1.42647390514189e-02)


_TANH_ALPHA = (-2.76076847742355e-16, 2.00018790482477e-13, -8.60467152213735e-11, 5.12229709037114e-08,
               1.48572235717979e-05, 6.37261928875436e-04, 4.89352455891786e-03)


_TANH_BETA = (1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03, 4.89352518554385e-03)


_EXP_P = (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1)


def _horner(x, coeffs):
    from tvm import tirx

    acc = tirx.const(coeffs[0], "float32")
    for c in coeffs[1:]:
        acc = acc * x + tirx.const(c, "float32")
    return acc


def _odd_rational(x, clamp, alpha, beta):
    from tvm import tirx

    f = lambda v: tirx.const(v, "float32")  # noqa: E731
    xc = tirx.max(tirx.min(x, f(clamp)), f(-clamp))
    x2 = xc * xc
    return xc * _horner(x2, alpha) / _horner(x2, beta)


def _fast_exp(x):
    from tvm import tirx

    f = lambda v: tirx.const(v, "float32")  # noqa: E731
    xc = tirx.max(tirx.min(x, f(88.3762626647950)), f(-88.3762626647949))
    n = tirx.floor(xc * f(1.44269504088896341) + f(0.5))
    r = xc - n * f(0.6931471805599453)
    y = _horner(r, _EXP_P) * r * r + r + f(1.0)
    ef = tirx.reinterpret("float32", tirx.shift_left(tirx.Cast("int32", n + f(127.0)), tirx.const(23, "int32")))
    return tirx.max(ef * y, x)


def fast_math(func):
    """``func`` with float32 exp/erf/tanh/sigmoid calls replaced by vectorizable polynomials, and
    ``pow(x, 2|3)`` by products (``powf`` is a scalar call too)."""
    import tvm_ffi
    from tvm import tirx
    from tvm.ir.expr import Call

    def cb(c):
        name = getattr(c.op, "name", "")
        if name == "tirx.pow" and len(c.args) == 2:  # x ** 2, x ** 3 (GPT-2's GELU): products
            e = c.args[1]
            v = getattr(e, "value", None)
            if v is not None and float(v) in (2.0, 3.0):
                x = c.args[0]
                return x * x if float(v) == 2.0 else x * x * x
            return c
        if name not in ("tirx.exp", "tirx.erf", "tirx.tanh", "tirx.sigmoid") or str(getattr(c, "dtype", None) or c.ty) != "float32" or len(c.args) != 1:
            return c
        x = c.args[0]
        if name == "tirx.exp":
            y = _fast_exp(x)
        elif name == "tirx.sigmoid":  # exp(-x) saturates to 0 or 3.4e38: sigmoid to 1 or ~0
            y = tirx.const(1.0, "float32") / (tirx.const(1.0, "float32") + _fast_exp(-x))
        elif name == "tirx.erf":
            y = _odd_rational(x, 4.0, _ERF_ALPHA, _ERF_BETA)
        else:
            y = _odd_rational(x, 9.0, _TANH_ALPHA, _TANH_BETA)
        return tirx.Select(tirx.isnan(x), x, y)

    return tvm_ffi.structural_map(func, [(Call, cb)])
