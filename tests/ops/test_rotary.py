"""graphopt.RotaryEmbedding: type inference (and errors naming the input at fault), the
reference decomposition against numpy (rotate_half and GPT-J interleaved, full and partial
rotary width), ONNX export as a local function and import back, and compiling it."""

from __future__ import annotations

import numpy as np
import pytest

import graphopt
from graphopt.ir import DType, Graph, TensorType
from graphopt.ir.parser import parse_ir
from graphopt.ir.printer import print_ir
from graphopt.ir.verifier import verify
from graphopt.ops import InferError, build, get_schema
from graphopt.testing.oracle import evaluate_model


def rope_np(x, cos, sin, interleaved=0, rdim=0):
    """Y[..., :R] = x_r * cos + rot(x_r) * sin, the rest of x passed through."""
    r = rdim or x.shape[-1]
    xr = x[..., :r]
    if interleaved:
        rot = np.stack([-xr[..., 1::2], xr[..., 0::2]], axis=-1).reshape(xr.shape)
    else:
        rot = np.concatenate([-xr[..., r // 2:], xr[..., :r // 2]], axis=-1)
    return np.concatenate([xr * cos + rot * sin, x[..., r:]], axis=-1)


def rope_graph(x_shape=(1, 4, 8, 16), cs_shape=(1, 1, 8, 16), dt=DType.FLOAT32, **attrs) -> Graph:
    g = Graph("g", {"": 21, "graphopt": 1})
    x = g.add_input("x", TensorType(dt, x_shape))
    cos = g.add_input("cos", TensorType(dt, cs_shape))
    sin = g.add_input("sin", TensorType(dt, cs_shape))
    g.set_outputs([build(g, "RotaryEmbedding", [x, cos, sin], attrs, domain="graphopt", name="rope").output])
    return g


def _feeds(x_shape, cs_shape, dt=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    ang = rng.uniform(-3, 3, cs_shape)
    return {"x": rng.standard_normal(x_shape).astype(dt), "cos": np.cos(ang).astype(dt), "sin": np.sin(ang).astype(dt)}


@pytest.mark.parametrize("interleaved", [0, 1])
@pytest.mark.parametrize("rdim,cs_shape", [(0, (1, 1, 8, 16)), (8, (1, 1, 8, 8)), (0, (8, 16)), (4, (8, 4))])
def test_decomposition_matches_numpy_through_onnx(interleaved, rdim, cs_shape):
    g = rope_graph(cs_shape=cs_shape, interleaved=interleaved, rotary_embedding_dim=rdim)
    verify(g)
    text = print_ir(g)
    assert print_ir(parse_ir(text)) == text
    model = graphopt.export_onnx(g)
    (fn,) = model.functions
    assert fn.domain == "graphopt" and {n.op_type for n in fn.node} >= {"Slice", "Neg", "Concat", "Mul", "Add"}
    feeds = _feeds((1, 4, 8, 16), cs_shape)
    (got,) = evaluate_model(model, feeds)
    np.testing.assert_allclose(got, rope_np(feeds["x"], feeds["cos"], feeds["sin"], interleaved, rdim),
                               rtol=1e-6, atol=1e-6)
    assert print_ir(graphopt.import_onnx(model)) == text


def test_the_rotation_is_a_rotation():
    # cos = 1, sin = 0 is the identity; cos = 0, sin = 1 is rot itself, applied twice -x
    x = np.arange(8, dtype=np.float32).reshape(1, 8)
    one, zero = np.ones((1, 8), np.float32), np.zeros((1, 8), np.float32)
    model = graphopt.export_onnx(rope_graph((1, 8), (1, 8)))
    (ident,) = evaluate_model(model, {"x": x, "cos": one, "sin": zero})
    (rot,) = evaluate_model(model, {"x": x, "cos": zero, "sin": one})
    (rot2,) = evaluate_model(model, {"x": rot, "cos": zero, "sin": one})
    np.testing.assert_array_equal(ident, x)
    np.testing.assert_array_equal(rot, [[-4, -5, -6, -7, 0, 1, 2, 3]])
    np.testing.assert_array_equal(rot2, -x)


def test_symbolic_leading_dims_infer_and_run():
    g = rope_graph(("B", "H", "S", 16), ("B", 1, "S", 16), interleaved=1)
    assert g.outputs[0].type == TensorType(DType.FLOAT32, ("B", "H", "S", 16))
    feeds = _feeds((2, 3, 5, 16), (2, 1, 5, 16))
    (got,) = evaluate_model(graphopt.export_onnx(g), feeds)
    np.testing.assert_allclose(got, rope_np(feeds["x"], feeds["cos"], feeds["sin"], 1), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("x_shape,cs_shape,attrs,dts,msg", [
    ((1, 4, 8, 16), (1, 1, 8, 8), {}, None,
     r"input 1 \(cos\) \[1, 1, 8, 8\] does not broadcast to X\[..., :16\] \[1, 4, 8, 16\]"),
    ((1, 1, 8, 16), (1, 4, 8, 16), {}, None, r"input 1 \(cos\) \[1, 4, 8, 16\] does not broadcast .* without widening"),
    ((1, 4, 8, 16), (1, 1, 8, 16), {"rotary_embedding_dim": 32}, None, "rotary_embedding_dim 32 is larger than X's last dim 16"),
    ((1, 4, 8, 15), (1, 1, 8, 15), {}, None, "the rotated width 15 is odd"),
    ((1, 4, 8, "D"), (1, 1, 8, "D"), {}, None, "input 0 \\(X\\) .*the last dim \\(the head dim\\) must be known"),
    ((1, 4, 8, 16), (1, 1, 8, 16), {"interleaved": 2}, None, "interleaved must be 0 or 1, got 2"),
    ((1, 4, 8, 16), (1, 1, 8, 16), {}, (DType.FLOAT32, DType.FLOAT32, DType.FLOAT16),
     r"input 2 \(sin\) is f16, X is f32"),
    ((1, 4, 8, 16), (1, 1, 8, 16), {}, (DType.INT32,) * 3, r"input 0 \(X\) must be float, got i32"),
])
def test_inference_names_the_input_at_fault(x_shape, cs_shape, attrs, dts, msg):
    dts = dts or (DType.FLOAT32,) * 3
    g = Graph("g", {"": 21, "graphopt": 1})
    ins = [g.add_input(n, TensorType(dt, s)) for n, dt, s in zip(("x", "cos", "sin"), dts, (x_shape, cs_shape, cs_shape))]
    with pytest.raises(InferError, match=msg):
        build(g, "RotaryEmbedding", ins, attrs, domain="graphopt")


def test_schema_traits_and_flops():
    from graphopt.ops.flops import FlopSite

    s = get_schema("RotaryEmbedding", "graphopt")
    assert s.traits.kind is not None and s.decomposition is not None
    g = rope_graph(rotary_embedding_dim=8, cs_shape=(1, 1, 8, 8))
    # 1*4*8 rows of 8 rotated elements: 3 flops each and a Neg over half
    assert s.traits.flops(FlopSite(g.nodes[0], {})) == 32 * 8 * 3 + 32 * 4


@pytest.mark.parametrize("interleaved,rdim", [(0, 0), (1, 0), (0, 8)])
def test_compiles_and_matches_numpy(interleaved, rdim):
    cs = (1, 1, 8, rdim or 16)
    g = rope_graph(cs_shape=cs, interleaved=interleaved, rotary_embedding_dim=rdim)
    compiled = graphopt.optimize(g, opt_level=None)
    feeds = _feeds((1, 4, 8, 16), cs)
    np.testing.assert_allclose(compiled(feeds["x"], feeds["cos"], feeds["sin"]),
                               rope_np(feeds["x"], feeds["cos"], feeds["sin"], interleaved, rdim), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("interleaved,rdim", [(0, 0), (1, 8)])
def test_compiles_with_symbolic_dims(interleaved, rdim):
    g = rope_graph(("B", "H", "S", 16), ("B", 1, "S", rdim or 16), interleaved=interleaved, rotary_embedding_dim=rdim)
    compiled = graphopt.optimize(g, opt_level=None)
    assert compiled.report.kernels == 1  # one injective compute, no Slice/Concat kernels
    for shape in [(2, 3, 5), (1, 4, 7)]:
        feeds = _feeds(shape + (16,), (shape[0], 1, shape[2], rdim or 16))
        np.testing.assert_allclose(compiled(feeds["x"], feeds["cos"], feeds["sin"]),
                                   rope_np(feeds["x"], feeds["cos"], feeds["sin"], interleaved, rdim), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("interleaved", [0, 1])
def test_float16_compiles_within_its_tolerance(interleaved):
    from graphopt.testing import assert_close, run_reference

    g = rope_graph(dt=DType.FLOAT16, interleaved=interleaved)
    feeds = _feeds((1, 4, 8, 16), (1, 1, 8, 16), np.float16)
    assert_close(run_reference(g, feeds), graphopt.optimize(g, opt_level=None).run(**feeds))
