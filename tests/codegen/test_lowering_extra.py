"""The lowerings of codegen/lower/ (index, resize, quant, pool, norm...) against the oracle (onnxruntime, no
optimizations). Graphs are small ONNX models made with onnx.helper and imported; several
nodes share one graph (one TVM build) and each node is its own graph output, so a failure
names the node. The exhaustive attribute sweeps are marked slow."""

from __future__ import annotations

import itertools

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from codegen_testutil import check_against_oracle, compile_graph

_NP2ONNX = {np.dtype(k): v for k, v in [("float32", TensorProto.FLOAT), ("float16", TensorProto.FLOAT16),
                                        ("float64", TensorProto.DOUBLE), ("int64", TensorProto.INT64),
                                        ("int32", TensorProto.INT32), ("int8", TensorProto.INT8),
                                        ("uint8", TensorProto.UINT8), ("int16", TensorProto.INT16),
                                        ("uint16", TensorProto.UINT16), ("bool", TensorProto.BOOL)]}


def make_graph(nodes, inputs: dict, outputs, consts: dict | None = None, name="g", shapes: dict | None = None):
    """An imported graphopt Graph: ``inputs`` {name: array (its dtype and shape; ``shapes``
    overrides a shape, e.g. with a symbolic dim)}, ``consts`` {name: array} as initializers,
    ``outputs`` names (types inferred)."""
    from graphopt.frontend.onnx_import import import_onnx

    shapes = shapes or {}
    ins = [helper.make_tensor_value_info(k, _NP2ONNX[v.dtype], shapes.get(k, list(v.shape))) for k, v in inputs.items()]
    inits = [numpy_helper.from_array(np.asarray(v), k) for k, v in (consts or {}).items()]
    outs = [onnx.ValueInfoProto(name=o) for o in outputs]
    g = helper.make_graph(nodes, name, ins, outs, inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)
    inferred = {vi.name: vi.type for vi in onnx.shape_inference.infer_shapes(m).graph.value_info}
    unknown = []
    for o in m.graph.output:
        t = inferred.get(o.name)
        if t is not None and t.tensor_type.HasField("shape") and not any(
                d.dim_param.startswith("unk__") for d in t.tensor_type.shape.dim):
            o.type.CopyFrom(t)
        elif t is not None and t.tensor_type.HasField("shape"):
            # dims onnx names unk__N left anonymous (a rank-0 placeholder would contradict
            # what graphopt's importer infers, and it refuses that): it infers the real ones
            o.type.CopyFrom(t)
            for d in o.type.tensor_type.shape.dim:
                if d.dim_param.startswith("unk__"):
                    d.Clear()
        else:
            unknown.append(o)
    if unknown:  # onnx infers nothing here: graphopt's importer does, on a model without them
        probe = onnx.ModelProto()
        probe.CopyFrom(m)
        del probe.graph.output[:]
        probe.graph.output.extend([o for o in m.graph.output if o not in unknown] or [ins[0]])
        gp = import_onnx(probe)
        for o in unknown:
            v = gp.lookup(o.name)
            o.type.CopyFrom(helper.make_tensor_type_proto(_NP2ONNX[np.dtype(v.type.dtype.numpy)], list(v.type.shape)))
    return import_onnx(m)


def check(nodes, inputs, outputs, consts=None, tol=None, shapes=None):
    g = make_graph(nodes, inputs, outputs, consts, shapes=shapes)
    return check_against_oracle(g, inputs, tol=tol)


RNG = np.random.default_rng(0)


def rand(*shape, dt=np.float32):
    return RNG.uniform(-1, 1, shape).astype(dt)


N = helper.make_node


# --------------------------------------------------------------------------- TopK
def test_topk_variants():
    x = rand(3, 7, 5)
    x[0, :3, 0] = 0.5  # ties: the lower index comes first
    x[1, 2, :] = x[1, 4, :]
    nodes, outs = [], []
    for i, (axis, largest, k) in enumerate([(-1, 1, 3), (1, 1, 7), (1, 0, 2), (0, 0, 1), (1, 1, 1)]):
        nodes.append(N("TopK", ["x", f"k{i}"], [f"v{i}", f"i{i}"], axis=axis, largest=largest, sorted=1))
        outs += [f"v{i}", f"i{i}"]
    consts = {f"k{i}": np.array([k], np.int64) for i, k in enumerate([3, 7, 2, 1, 1])}
    check(nodes, {"x": x}, outs, consts)


def test_topk_int_and_feeding_a_graph():
    x = RNG.integers(-20, 20, (4, 9)).astype(np.int64)
    nodes = [N("TopK", ["x", "k"], ["v", "i"], axis=1),
             N("Cast", ["v"], ["vf"], to=TensorProto.FLOAT),
             N("Gather", ["x", "i"], ["gi"], axis=1)]
    check(nodes, {"x": x}, ["v", "i", "vf", "gi"], {"k": np.array([4], np.int64)})


# --------------------------------------------------------------------------- Resize
def _resize_node(i, **attrs):
    scales = attrs.pop("scales", None)
    sizes = attrs.pop("sizes", None)
    roi = attrs.pop("roi", None)
    ins = ["x", f"roi{i}" if roi is not None else "", f"sc{i}" if scales is not None else "",
           f"sz{i}" if sizes is not None else ""]
    while ins and ins[-1] == "":
        ins.pop()
    consts = {}
    if roi is not None:
        consts[f"roi{i}"] = np.array(roi, np.float32)
    if scales is not None:
        consts[f"sc{i}"] = np.array(scales, np.float32)
    if sizes is not None:
        consts[f"sz{i}"] = np.array(sizes, np.int64)
    return N("Resize", ins, [f"y{i}"], **attrs), consts


def _check_resizes(x, cases, tol=None):
    nodes, consts, outs = [], {}, []
    for i, attrs in enumerate(cases):
        node, c = _resize_node(i, **dict(attrs))
        nodes.append(node)
        consts.update(c)
        outs.append(f"y{i}")
    check(nodes, {"x": x}, outs, consts, tol=tol)


UP = [1, 1, 2.0, 1.5]
DOWN = [1, 1, 0.6, 0.5]


def test_resize_nearest_modes():
    x = rand(1, 2, 4, 6)
    cases = []
    for nm in ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil"):
        for ctm in ("half_pixel", "asymmetric", "align_corners"):
            cases.append(dict(mode="nearest", nearest_mode=nm, coordinate_transformation_mode=ctm, scales=UP))
    cases += [dict(mode="nearest", scales=DOWN),
              dict(mode="nearest", sizes=[1, 2, 7, 3]),
              dict(mode="nearest", coordinate_transformation_mode="pytorch_half_pixel", sizes=[1, 2, 1, 9]),
              dict(mode="nearest", coordinate_transformation_mode="half_pixel_symmetric", scales=[1, 1, 2.5, 0.75])]
    _check_resizes(x, cases)


def test_resize_linear_cubic():
    x = rand(2, 3, 5, 6)
    cases = []
    for mode in ("linear", "cubic"):
        for ctm in ("half_pixel", "asymmetric", "align_corners", "pytorch_half_pixel", "half_pixel_symmetric"):
            cases.append(dict(mode=mode, coordinate_transformation_mode=ctm, scales=UP))
        cases.append(dict(mode=mode, scales=DOWN))
        cases.append(dict(mode=mode, sizes=[2, 3, 8, 4]))
    cases.append(dict(mode="cubic", exclude_outside=1, scales=UP))
    cases.append(dict(mode="cubic", cubic_coeff_a=-0.5, scales=DOWN))
    cases.append(dict(mode="linear", axes=[2, 3], scales=[1.5, 0.5]))
    cases.append(dict(mode="linear", keep_aspect_ratio_policy="not_larger", axes=[2, 3], sizes=[7, 9]))
    cases.append(dict(mode="nearest", keep_aspect_ratio_policy="not_smaller", axes=[3, 2], sizes=[9, 7]))
    _check_resizes(x, cases)


def test_resize_tf_crop_and_resize():
    x = rand(1, 1, 6, 5)
    roi = [0, 0, 0.2, 0.1, 1, 1, 0.9, 1.3]
    cases = [dict(mode=m, coordinate_transformation_mode="tf_crop_and_resize", roi=roi, sizes=[1, 1, 4, 6],
                  extrapolation_value=e) for m, e in (("nearest", 0.0), ("linear", -2.0), ("cubic", 10.0))]
    _check_resizes(x, cases)


def test_resize_1d_3d_and_chain():
    """3-d linear (trilinear), and Resize inside a small network."""
    x = rand(1, 2, 3, 4, 5)
    _check_resizes(x, [dict(mode="linear", scales=[1, 1, 2, 0.5, 1.5]),
                       dict(mode="nearest", scales=[1, 1, 1, 2, 3])])
    y = rand(1, 3, 4, 4)
    nodes = [N("Relu", ["y"], ["r"]),
             N("Resize", ["r", "", "s"], ["u"], mode="linear"),
             N("Add", ["u", "u"], ["o"])]
    check(nodes, {"y": y}, ["o"], {"s": np.array([1, 1, 2, 2], np.float32)})


def test_resize_unsupported_is_named():
    from graphopt.codegen.lower import LoweringError

    g = make_graph([N("Resize", ["x", "", "s"], ["y"], mode="linear", antialias=1, name="my_resize")],
                   {"x": rand(1, 1, 4, 4)}, ["y"], {"s": np.array([1, 1, 0.5, 0.5], np.float32)})
    with pytest.raises(LoweringError, match="my_resize.*antialias"):
        compile_graph(g)


@pytest.mark.slow
def test_resize_sweep():
    x = rand(1, 2, 5, 7)
    scale_sets = [[1, 1, 2, 3], [1, 1, 0.5, 0.3], [1, 1, 1.7, 0.8], [1, 1, 3, 1]]
    for ctm in ("half_pixel", "asymmetric", "align_corners", "pytorch_half_pixel", "half_pixel_symmetric"):
        cases = []
        for sc in scale_sets:
            for nm in ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil"):
                cases.append(dict(mode="nearest", nearest_mode=nm, coordinate_transformation_mode=ctm, scales=sc))
            cases.append(dict(mode="linear", coordinate_transformation_mode=ctm, scales=sc))
            for ex in (0, 1):
                cases.append(dict(mode="cubic", coordinate_transformation_mode=ctm, exclude_outside=ex, scales=sc))
        _check_resizes(x, cases)


# --------------------------------------------------------------------------- gather / scatter
def test_gather_scatter_nd():
    data = rand(3, 4, 5)
    nodes = [
        N("GatherND", ["data", "i1"], ["g1"]),
        N("GatherND", ["data", "i2"], ["g2"]),
        N("GatherND", ["data", "i3"], ["g3"], batch_dims=1),
        N("GatherND", ["data", "iv"], ["g4"]),
        N("ScatterND", ["data", "s1", "u1"], ["s1o"]),
        N("ScatterND", ["data", "s2", "u2"], ["s2o"], reduction="add"),
        N("ScatterND", ["data", "s2", "u2"], ["s3o"], reduction="mul"),
        N("ScatterND", ["data", "s2", "u2"], ["s4o"], reduction="max"),
        N("ScatterND", ["data", "s2", "u2"], ["s5o"], reduction="min"),
    ]
    consts = {
        "i1": np.array([[0, 1], [2, -1], [-3, 3]], np.int64),
        "i2": np.array([[[0, 1, 2]], [[2, 3, -1]]], np.int64),
        "i3": np.array([[1], [-1], [0]], np.int64),
        "s1": np.array([[0], [-1]], np.int64),
        "s2": np.array([[0, 1], [2, 2], [0, 1]], np.int64),
    }
    inputs = {"data": data, "iv": np.array([[1, 2, 3], [0, 0, -5]], np.int64),
              "u1": rand(2, 4, 5), "u2": rand(3, 5)}
    check(nodes, inputs, ["g1", "g2", "g3", "g4", "s1o", "s2o", "s3o", "s4o", "s5o"], consts)


def test_scatter_elements():
    data = rand(4, 5)
    nodes = [N("ScatterElements", ["data", "i0", "u"], ["a"], axis=0),
             N("ScatterElements", ["data", "i1", "u"], ["b"], axis=1),
             N("ScatterElements", ["data", "i1", "u"], ["c"], axis=-1, reduction="add"),
             N("ScatterElements", ["data", "i1", "u"], ["d"], axis=1, reduction="mul"),
             N("ScatterElements", ["data", "i1", "u"], ["e"], axis=1, reduction="max"),
             N("ScatterElements", ["data", "i1", "u"], ["f"], axis=1, reduction="min"),
             N("ScatterElements", ["data", "iv", "u"], ["h"], axis=1, reduction="add")]
    consts = {"i0": np.array([[1, 0, 3, -1, 2], [2, 3, 0, 0, 1]], np.int64),
              "i1": np.array([[1, 1, -1, 0, 2], [4, 3, 3, 0, 1]], np.int64)}
    inputs = {"data": data, "u": rand(2, 5), "iv": np.array([[0, 0, 4, -1, 2], [1, 1, 1, 1, 1]], np.int64)}
    check(nodes, inputs, list("abcdefh"), consts)


def test_one_hot():
    idx = np.array([[0, 3, -1], [2, 7, -5]], np.int64)  # 7 and -5 are out of range: all off
    nodes = [N("OneHot", ["idx", "depth", "vals"], ["a"]),
             N("OneHot", ["idx", "depth", "vals"], ["b"], axis=0),
             N("OneHot", ["idx", "depth", "vals"], ["c"], axis=1),
             N("OneHot", ["idx32", "depthf", "vals"], ["d"], axis=-2)]
    consts = {"depth": np.array(4, np.int64), "depthf": np.array([5.0], np.float32)}
    inputs = {"idx": idx, "vals": np.array([0.5, 2.0], np.float32), "idx32": np.array([[1, 4, -2]], np.int32)}
    check(nodes, inputs, ["a", "b", "c", "d"], consts)


# --------------------------------------------------------------------------- normalization, quantization
def test_group_norm():
    x = rand(2, 6, 3, 4) * 3
    x5 = rand(1, 4, 2, 3, 2)
    nodes = [N("GroupNormalization", ["x", "s", "b"], ["a"], num_groups=3),
             N("GroupNormalization", ["x", "s", "b"], ["c"], num_groups=6, epsilon=1e-2),
             N("GroupNormalization", ["x", "s", "b"], ["d"], num_groups=1),
             N("GroupNormalization", ["x5", "s4", "b4"], ["e"], num_groups=2)]
    consts = {"s": rand(6), "b": rand(6), "s4": rand(4), "b4": rand(4)}
    check(nodes, {"x": x, "x5": x5}, ["a", "c", "d", "e"], consts)


def test_quantize_dequantize():
    x = rand(2, 3, 4) * 4
    x[0, 0, :4] = [0.5, 1.5, 2.5, -0.5]  # ties go to even (with scale 1)
    nodes = [
        N("QuantizeLinear", ["x", "one"], ["q0"]),
        N("QuantizeLinear", ["x", "sc", "zp8"], ["q1"]),
        N("QuantizeLinear", ["x", "sc_ax", "zp_ax"], ["q2"], axis=1),
        N("QuantizeLinear", ["x", "sc_last", "zp_lastu"], ["q3"], axis=-1),
        N("QuantizeLinear", ["x", "sc", "zp16"], ["q4"]),
        N("QuantizeLinear", ["x", "sc_blk", "zp_blk"], ["q5"], axis=2, block_size=2),
        N("DequantizeLinear", ["q1", "sc", "zp8"], ["d1"]),
        N("DequantizeLinear", ["q2", "sc_ax", "zp_ax"], ["d2"], axis=1),
        N("DequantizeLinear", ["q3", "sc_last", "zp_lastu"], ["d3"], axis=2),
        N("DequantizeLinear", ["q0", "sc"], ["d0"]),
        N("DequantizeLinear", ["xi", "sc"], ["d5"]),
        N("DequantizeLinear", ["q5", "sc_blk", "zp_blk"], ["d6"], axis=2, block_size=2),
    ]
    consts = {"one": np.array(1.0, np.float32), "sc": np.array(0.05, np.float32), "zp8": np.array(-3, np.int8),
              "sc_ax": np.array([0.1, 0.02, 0.5], np.float32), "zp_ax": np.array([0, 5, -7], np.int8),
              "sc_last": np.array([0.1, 0.02, 0.5, 0.03], np.float32),
              "zp_lastu": np.array([0, 128, 3, 250], np.uint8), "zp16": np.array(-100, np.int16),
              "sc_blk": np.array([[[0.1, 0.2]], [[0.03, 0.5]]], np.float32).repeat(3, 1),
              "zp_blk": np.array([[[1, -2]], [[3, 0]]], np.int8).repeat(3, 1)}
    inputs = {"x": x, "xi": np.array([-7, 0, 100, 2**20], np.int32)}
    check(nodes, inputs, ["q0", "q1", "q2", "q3", "q4", "q5", "d1", "d2", "d3", "d0", "d5", "d6"], consts)


def test_qdq_network():
    """A Q/DQ-wrapped Conv-free block: x -> Q -> DQ -> MatMul(Q/DQ weights)."""
    x = rand(3, 8)
    w = rand(8, 4)
    nodes = [N("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
             N("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
             N("DequantizeLinear", ["wq", "ws"], ["wd"], axis=1),
             N("MatMul", ["xd", "wd"], ["y"])]
    ws = np.abs(w).max(0) / 127
    consts = {"xs": np.array(0.01, np.float32), "xz": np.array(128, np.uint8),
              "wq": np.round(w / ws).astype(np.int8), "ws": ws.astype(np.float32)}
    check(nodes, {"x": x}, ["xq", "y"], consts)


def test_matmul_integer():
    # The oracle takes exact int32 numpy arithmetic for MatMulInteger (onnxruntime's u8 x s8
    # kernel saturates int16 on AVX2 CPUs without VNNI); large a and b make that matter.
    from graphopt.testing import reference_for

    assert reference_for({"MatMulInteger"}) == "numpy"
    a = RNG.integers(0, 255, (3, 5)).astype(np.uint8)
    a[0] = 255
    b = RNG.integers(-128, 127, (5, 4)).astype(np.int8)
    b[:, 0] = 127  # 255*127 + 255*127 overflows int16: where onnxruntime saturates on AVX2
    a3 = RNG.integers(-128, 127, (2, 3, 5)).astype(np.int8)
    nodes = [N("MatMulInteger", ["a", "b"], ["y0"]),
             N("MatMulInteger", ["a", "b", "az", "bz"], ["y1"]),
             N("MatMulInteger", ["a", "b", "az", "bzc"], ["y2"]),
             N("MatMulInteger", ["a3", "b"], ["y3"])]
    consts = {"az": np.array(12, np.uint8), "bz": np.array(-3, np.int8), "bzc": np.array([1, -2, 3, 0], np.int8)}
    check(nodes, {"a": a, "b": b, "a3": a3}, ["y0", "y1", "y2", "y3"], consts)


# --------------------------------------------------------------------------- misc
def test_eye_like_reverse_sequence_compress():
    x = rand(4, 6)
    xi = RNG.integers(0, 9, (3, 3)).astype(np.int64)
    seq = rand(5, 3, 2)
    nodes = [N("EyeLike", ["x"], ["e0"]),
             N("EyeLike", ["x"], ["e1"], k=2),
             N("EyeLike", ["x"], ["e2"], k=-1, dtype=TensorProto.INT32),
             N("EyeLike", ["xi"], ["e3"], k=5),
             N("ReverseSequence", ["seq", "lens"], ["r0"], batch_axis=1, time_axis=0),
             N("ReverseSequence", ["seqb", "lensb"], ["r1"], batch_axis=0, time_axis=1),
             N("Compress", ["x", "c4"], ["c0"], axis=0),
             N("Compress", ["x", "c6"], ["c1"], axis=-1),
             N("Compress", ["x", "cflat"], ["c2"])]
    consts = {"c4": np.array([True, False, True], bool), "c6": np.array([0, 1, 1, 0, 0, 1], bool),
              "cflat": np.array([1, 0, 0, 1, 1] + [0] * 10 + [1], bool)}
    inputs = {"x": x, "xi": xi, "seq": seq, "lens": np.array([5, 1, 3], np.int64),
              "seqb": rand(3, 4), "lensb": np.array([2, 4, 0], np.int64)}
    check(nodes, inputs, ["e0", "e1", "e2", "e3", "r0", "r1", "c0", "c1", "c2"], consts)


def test_lp_pool():
    x = rand(1, 2, 7, 6)
    x1 = rand(2, 3, 9)
    nodes = [N("LpPool", ["x"], ["p0"], kernel_shape=[3, 2]),
             N("LpPool", ["x"], ["p1"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 0], p=1),
             N("LpPool", ["x"], ["p2"], kernel_shape=[2, 2], auto_pad="SAME_UPPER", p=3),
             N("LpPool", ["x"], ["p3"], kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1),
             N("LpPool", ["x1"], ["p4"], kernel_shape=[4], strides=[2]),
             N("GlobalLpPool", ["x"], ["g0"]),
             N("GlobalLpPool", ["x"], ["g1"], p=1),
             N("GlobalLpPool", ["x1"], ["g2"], p=3)]
    check(nodes, {"x": x, "x1": x1}, ["p0", "p1", "p2", "p3", "p4", "g0", "g1", "g2"])


def test_max_unpool_after_max_pool():
    x = rand(1, 2, 4, 6)
    nodes = [N("MaxPool", ["x"], ["p", "i"], kernel_shape=[2, 2], strides=[2, 2]),
             N("MaxUnpool", ["p", "i"], ["u"], kernel_shape=[2, 2], strides=[2, 2]),
             N("MaxUnpool", ["p", "i", "osz"], ["u2"], kernel_shape=[2, 2], strides=[2, 2])]
    g = make_graph(nodes, {"x": x}, ["u", "u2"], {"osz": np.array([1, 2, 5, 7], np.int64)})
    from graphopt.testing import run_reference

    # The pool's Indices output is not lowered, so feed the indices as an input instead.
    p, i = run_reference(make_graph(nodes[:1], {"x": x}, ["p", "i"]), {"x": x})
    nodes2 = nodes[1:]
    check(nodes2, {"p": p, "i": i}, ["u", "u2"], {"osz": np.array([1, 2, 5, 7], np.int64)})


def test_nonzero_and_runtime_compress():
    """Data-dependent sizes: NonZero, and Compress on a condition computed at run time, feeding
    further ops (the count of non-zeros is a symbol bound at run time)."""
    x = rand(3, 4)
    x[x < 0.2] = 0
    nodes = [N("NonZero", ["x"], ["nz"]),
             N("Cast", ["nz"], ["nzf"], to=TensorProto.FLOAT),
             N("Relu", ["nzf"], ["nzr"]),
             N("Greater", ["v", "zero"], ["c"]),
             N("Compress", ["x", "c"], ["c0"], axis=1),
             N("Compress", ["x", "c"], ["c1"]),
             N("Greater", ["x", "zero"], ["cx"]),
             N("NonZero", ["cx"], ["nzb"]),
             N("Compress", ["x", "c3"], ["c2"], axis=0),
             N("Relu", ["c0"], ["c0r"])]
    inputs = {"x": x, "v": np.array([0.3, -1, 2, 0.1, 5], np.float32), "c3": np.array([True, False, True])}
    check(nodes, inputs, ["nz", "nzr", "c0", "c1", "nzb", "c2", "c0r"], {"zero": np.array(0.2, np.float32)})


def test_unsupported_variants_named():
    from graphopt.codegen.lower import LoweringError

    g = make_graph([N("TopK", ["x", "k"], ["v", "i"], name="dyn_topk")], {"x": rand(3, 4), "k": np.array([2])},
                   ["v", "i"])
    with pytest.raises(LoweringError, match="dyn_topk.*K"):
        compile_graph(g)


def test_symbolic_batch():
    """A free batch dim: compiled once, run at two sizes."""
    nodes = [N("Resize", ["x", "", "s"], ["r"], mode="linear"),
             N("GatherND", ["x", "gi"], ["g"], batch_dims=1),
             N("TopK", ["x", "k"], ["v", "i"], axis=-1),
             N("GroupNormalization", ["x", "gs", "gb"], ["gn"], num_groups=2),
             N("QuantizeLinear", ["x", "qs", "qz"], ["q"], axis=1),
             N("ReverseSequence", ["x3", "lens"], ["rs"], batch_axis=0, time_axis=1)]
    consts = {"s": np.array([1, 1, 2, 0.5], np.float32), "k": np.array([2], np.int64),
              "gs": rand(4), "gb": rand(4), "qs": np.array([0.1, 0.2, 0.05, 0.01], np.float32),
              "qz": np.array([0, 1, 2, 3], np.int8)}
    shapes = {"x": ["N", 4, 3, 6], "gi": ["N", 2, 2], "x3": ["N", 5, 2], "lens": ["N"]}
    outs = ["r", "g", "v", "i", "gn", "q", "rs"]
    model = None
    for b in (2, 3):
        inputs = {"x": rand(b, 4, 3, 6), "gi": RNG.integers(-3, 3, (b, 2, 2)).astype(np.int64),
                  "x3": rand(b, 5, 2), "lens": RNG.integers(0, 6, (b,)).astype(np.int64)}
        g = make_graph(nodes, inputs, outs, consts, shapes=shapes)
        model = check_against_oracle(g, inputs, model=model)


@pytest.mark.slow
def test_scatter_gather_random_sweep():
    for seed in range(6):
        rng = np.random.default_rng(seed)
        data = rng.uniform(-1, 1, (4, 3, 5)).astype(np.float32)
        for red in ("none", "add", "mul", "max", "min"):
            ie = rng.integers(-4, 4, (2, 3, 5)).astype(np.int64)
            if red == "none":  # duplicates make "none" order-dependent
                ie = np.stack([rng.permutation(4)[:2] for _ in range(15)], -1).reshape(2, 3, 5) - 4 * (seed % 2)
            ind = rng.integers(-3, 3, (3, 2)).astype(np.int64)
            if red == "none":
                ind = np.array([[0, 0], [1, -1], [3, 2]], np.int64)
            nodes = [N("ScatterElements", ["d", "ie", "u"], ["a"], axis=0, reduction=red),
                     N("ScatterND", ["d", "ind", "un"], ["b"], reduction=red),
                     N("GatherND", ["d", "ind"], ["c"]),
                     N("GatherElements", ["a", "ie"], ["e"], axis=0)]
            inputs = {"d": data, "ie": ie, "u": rng.uniform(-1, 1, (2, 3, 5)).astype(np.float32), "ind": ind,
                      "un": rng.uniform(-1, 1, (3, 5)).astype(np.float32)}
            check(nodes, inputs, ["a", "b", "c", "e"])


@pytest.mark.slow
def test_quantize_dtype_sweep():
    x = rand(2, 5, 3) * 300
    for zdt in (np.uint8, np.int8, np.uint16, np.int16):
        info = np.iinfo(zdt)
        zp = np.array([info.min, (int(info.min) + int(info.max)) // 2, info.max, 0, 1][:5], zdt)
        nodes = [N("QuantizeLinear", ["x", "s", "z"], ["q"], axis=1),
                 N("DequantizeLinear", ["q", "s", "z"], ["d"], axis=1),
                 N("QuantizeLinear", ["x", "s1", "z1"], ["q1"]),
                 N("DequantizeLinear", ["q1", "s1", "z1"], ["d1"])]
        consts = {"s": np.array([0.5, 1, 2, 0.01, 3], np.float32), "z": zp,
                  "s1": np.array(0.7, np.float32), "z1": np.array(zp[1])}
        check(nodes, {"x": x}, ["q", "d", "q1", "d1"], consts)


@pytest.mark.slow
def test_lp_pool_sweep():
    x = rand(2, 3, 8, 7)
    nodes, outs = [], []
    for i, (ks, st, pads, p, ceil) in enumerate(itertools.product([[2, 2], [3, 2]], [[1, 1], [2, 3]],
                                                                   [[0, 0, 0, 0], [1, 0, 1, 1]], [1, 2, 3], [0, 1])):
        nodes.append(N("LpPool", ["x"], [f"p{i}"], kernel_shape=ks, strides=st, pads=pads, p=p, ceil_mode=ceil))
        outs.append(f"p{i}")
    check(nodes, {"x": x}, outs)


@pytest.mark.slow
def test_topk_sweep():
    for dt in (np.float32, np.float64, np.int32, np.int64):
        x = (RNG.integers(-5, 5, (4, 6, 5))).astype(dt)  # many ties
        nodes, outs, consts = [], [], {}
        for i, (axis, largest, k) in enumerate(itertools.product([0, 1, -1], [0, 1], [1, 3, 4])):
            nodes.append(N("TopK", ["x", f"k{i}"], [f"v{i}", f"i{i}"], axis=axis, largest=largest))
            consts[f"k{i}"] = np.array([k], np.int64)
            outs += [f"v{i}", f"i{i}"]
        check(nodes, {"x": x}, outs, consts)


def test_slice_with_runtime_indices():
    """starts/ends/axes/steps given as graph inputs (dynamic_strided_slice): negative and
    out-of-range indices, negative steps, negative axes, omitted axes and steps; one build,
    several index sets."""
    from graphopt.compiler import compile_model

    x = rand(5, 6, 4)
    g = make_graph([N("Slice", ["x", "st", "en", "ax", "sp"], ["y"]), N("Slice", ["x", "st", "en"], ["z"])],
                   {"x": x, "st": np.array([1, -4], np.int64), "en": np.array([4, 100], np.int64),
                    "ax": np.array([0, 1], np.int64), "sp": np.array([1, 1], np.int64)}, ["y", "z"])
    model = compile_model(g, "cpu", opt_level=None)
    for st, en, ax, sp in [([1, -4], [4, 100], [0, 1], [1, 1]), ([-1, 0], [-100, 6], [0, -1], [-2, 3]),
                           ([9, 2], [10, -1], [-3, 2], [1, 1]), ([0, 5], [5, 0], [1, 2], [2, -1])]:
        feeds = {"x": x, "st": np.array(st, np.int64), "en": np.array(en, np.int64), "ax": np.array(ax, np.int64),
                 "sp": np.array(sp, np.int64)}
        check_against_oracle(g, feeds, model=model)


def test_range_with_runtime_bounds():
    """Range whose start/limit/delta are graph inputs: the length is bound at run time
    (empty, negative delta, fractional float steps), one build for all."""
    from graphopt.compiler import compile_model

    for dt in (np.float32, np.int64):
        args = {"a": np.array(1, dt), "b": np.array(7, dt), "d": np.array(2, dt)}
        g = make_graph([N("Range", ["a", "b", "d"], ["y"])], args, ["y"])
        model = compile_model(g, "cpu", opt_level=None)
        for a, b, d in [(1, 7, 2), (5, -3, -3), (4, 4, 1), (3, 1, 1)] + ([(0.5, 2.2, 0.3)] if dt == np.float32 else []):
            check_against_oracle(g, {"a": np.array(a, dt), "b": np.array(b, dt), "d": np.array(d, dt)}, model=model)


def test_layer_norm_mean_and_inv_std_dev_outputs():
    x = rand(2, 3, 8)
    nodes, outs = [], []
    for i, axis in enumerate([-1, 1]):
        nodes.append(N("LayerNormalization", ["x", f"g{i}", f"b{i}"], [f"y{i}", f"m{i}", f"s{i}"], axis=axis,
                       epsilon=1e-3))
        outs += [f"y{i}", f"m{i}", f"s{i}"]
    consts = {"g0": rand(8), "b0": rand(8), "g1": rand(3, 8), "b1": rand(3, 8)}
    check(nodes, {"x": x}, outs, consts)
    check([N("LayerNormalization", ["h", "gh"], ["yh", "mh", "sh"])], {"h": rand(4, 6, dt=np.float16)},
          ["yh", "mh", "sh"], {"gh": rand(6, dt=np.float16)})


def test_reshape_expand_constant_of_shape_with_runtime_shapes():
    """Shape inputs computed at run time (graph inputs here): 0 copies a dim, -1 infers
    one, Expand broadcasts both ways; one build for several shapes."""
    from graphopt.compiler import compile_model

    x, e = rand(2, 3, 4), rand(3, 1)
    feeds = {"x": x, "s": np.array([0, -1], np.int64), "e": e, "t": np.array([2, 1, 5], np.int64),
             "c": np.array([2, 3], np.int64)}
    g = make_graph([N("Reshape", ["x", "s"], ["r"]), N("Expand", ["e", "t"], ["ex"]),
                    N("ConstantOfShape", ["c"], ["z"], value=numpy_helper.from_array(np.array([1.5], np.float32))),
                    N("Relu", ["r"], ["rr"])], feeds, ["rr", "ex", "z"])
    model = compile_model(g, "cpu", opt_level=None)
    for s, t, c in [([0, -1], [2, 1, 5], [2, 3]), ([-1, 4], [1, 3, 3], [0, 1]), ([8, 0], [1, 1, 1], [1, 4])]:
        f = dict(feeds, s=np.array(s, np.int64), t=np.array(t, np.int64), c=np.array(c, np.int64))
        check_against_oracle(g, f, model=model)


def test_runtime_length_is_bound_before_fused_uses():
    """A window-function shape: ops before a run-time Range fuse with ops after it; TVM's
    FuseOps must not hoist that group above the binding of the Range's length."""
    n_in = {"n": np.array(7, np.int64)}
    g = make_graph([N("Cast", ["n"], ["nf"], to=TensorProto.FLOAT), N("Div", ["two_pi", "nf"], ["w"]),
                    N("Range", ["zero", "nf", "one"], ["k"]), N("Mul", ["k", "w"], ["kw"]), N("Cos", ["kw"], ["y"])],
                   n_in, ["y"], {"two_pi": np.array(6.2831855, np.float32), "zero": np.array(0, np.float32),
                                 "one": np.array(1, np.float32)})
    check_against_oracle(g, n_in)


def test_reduce_max_min_of_infinities():
    """A row of only -inf has max -inf (TVM's reduction alone gives the lowest finite
    float), and a row holding the lowest finite float keeps it."""
    lo, hi = np.finfo(np.float32).min, np.finfo(np.float32).max
    x = np.array([[-np.inf, -np.inf, -np.inf], [lo, -np.inf, -np.inf], [1.0, -np.inf, 2.0], [np.inf, np.inf, np.inf],
                  [hi, np.inf, np.inf]], np.float32)
    check([N("ReduceMax", ["x", "ax"], ["mx"], keepdims=1), N("ReduceMin", ["x", "ax"], ["mn"], keepdims=0),
           N("ReduceMax", ["x"], ["all"], keepdims=0)], {"x": x}, ["mx", "mn", "all"], {"ax": np.array([1], np.int64)})


def test_cast_to_bfloat16_rounds_even_when_cast_back():
    """float32 -> bfloat16 -> float32 fused into one kernel: rounding to nearest even
    (ties both ways), NaN, infinities; TVM's own cast pair came back unrounded."""
    x = np.array([1 + 2 ** -9, 1 + 3 * 2 ** -9, 1 + 2 ** -8 + 2 ** -10, -2.5 - 2 ** -8, np.nan, np.inf, -np.inf,
                  3.0e38, 1e-40, 0.0], np.float32)
    check([N("Cast", ["x"], ["b"], to=TensorProto.BFLOAT16), N("Cast", ["b"], ["y"], to=TensorProto.FLOAT)],
          {"x": x}, ["y"])
