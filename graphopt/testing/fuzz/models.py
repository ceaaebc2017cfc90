"""The base models the cases damage: examples/tiny_cnn.onnx and small graphs built with
onnx.helper, each with its inputs. Built deterministically, so a worker rebuilds the same
bytes from a name."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

OPSET = 21
IR_VERSION = 10
TINY_CNN = Path(__file__).resolve().parents[3] / "examples" / "tiny_cnn.onnx"


def _h():
    from onnx import TensorProto, helper, numpy_helper

    return TensorProto, helper, numpy_helper


def _model(nodes, inputs, outputs, inits=(), name="g", opset=OPSET):
    _, helper, _ = _h()
    g = helper.make_graph(nodes, name, inputs, outputs, initializer=list(inits))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=IR_VERSION,
                             producer_name="graphopt-fuzz")


def _w(name, shape, seed, scale=0.3):
    _, _, nh = _h()
    return nh.from_array((np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32), name)


def mlp():
    """MatMul+Add+Relu, twice: the issue's NaN finding."""
    T, h, _ = _h()
    nodes = [h.make_node("MatMul", ["x", "w1"], ["h1"], name="mm1"), h.make_node("Add", ["h1", "b1"], ["h2"], name="add1"),
             h.make_node("Relu", ["h2"], ["h3"], name="relu1"), h.make_node("MatMul", ["h3", "w2"], ["y"], name="mm2")]
    return _model(nodes, [h.make_tensor_value_info("x", T.FLOAT, [2, 8])], [h.make_tensor_value_info("y", T.FLOAT, [2, 4])],
                  [_w("w1", [8, 16], 1), _w("b1", [16], 2), _w("w2", [16, 4], 3)], name="mlp")


def numerics():
    """One input, one output per lowering family whose NaN/inf handling differs by kernel:
    reductions, max/min, clip, softmax, pooling, activations, a matmul."""
    T, h, _ = _h()
    x = h.make_tensor_value_info("x", T.FLOAT, [1, 2, 4, 4])
    ops = [("Relu", {}), ("Sigmoid", {}), ("Abs", {}), ("Softmax", {"axis": -1}), ("ReduceMax", {"keepdims": 1}),
           ("ReduceMin", {"keepdims": 1}), ("ReduceSum", {"keepdims": 1}), ("ReduceMean", {"keepdims": 1}),
           ("MaxPool", {"kernel_shape": [2, 2]}), ("AveragePool", {"kernel_shape": [2, 2]}), ("LeakyRelu", {}),
           ("Tanh", {}), ("Exp", {}), ("Sqrt", {}), ("Floor", {})]
    nodes, outs = [], []
    for i, (op, attrs) in enumerate(ops):
        nodes.append(h.make_node(op, ["x"], [f"o{i}_{op}"], name=f"n{i}_{op}", **attrs))
        shape = [1, 1, 1, 1] if op.startswith("Reduce") else [1, 2, 3, 3] if op.endswith("Pool") else [1, 2, 4, 4]
        outs.append(h.make_tensor_value_info(f"o{i}_{op}", T.FLOAT, shape))
    nodes += [h.make_node("Max", ["x", "c"], ["o_max"], name="max"), h.make_node("Min", ["x", "c"], ["o_min"], name="min"),
              h.make_node("Clip", ["x", "lo", "hi"], ["o_clip"], name="clip"),
              h.make_node("MatMul", ["x", "w"], ["o_mm"], name="mm")]
    outs += [h.make_tensor_value_info(n, T.FLOAT, [1, 2, 4, 4]) for n in ("o_max", "o_min", "o_clip", "o_mm")]
    _, _, nh = _h()
    inits = [nh.from_array(np.float32(0.5).reshape(()), "c"), nh.from_array(np.float32(-1).reshape(()), "lo"),
             nh.from_array(np.float32(1).reshape(()), "hi"), _w("w", [4, 4], 7)]
    return _model(nodes, [x], outs, inits, name="numerics")


def elementwise():
    """A small graph of many op kinds, for bit flips and truncation."""
    T, h, _ = _h()
    _, _, nh = _h()
    nodes = [h.make_node("Mul", ["x", "s"], ["a"], name="mul"), h.make_node("Add", ["a", "t"], ["b"], name="add"),
             h.make_node("Sigmoid", ["b"], ["c"], name="sig"), h.make_node("Transpose", ["c"], ["d"], perm=[1, 0], name="tr"),
             h.make_node("Reshape", ["d", "shape"], ["e"], name="rs"),
             h.make_node("ReduceSum", ["e", "axes"], ["y"], keepdims=0, name="rsum")]
    inits = [_w("s", [3, 4], 11), _w("t", [4], 12), nh.from_array(np.array([2, 6], np.int64), "shape"),
             nh.from_array(np.array([1], np.int64), "axes")]
    return _model(nodes, [h.make_tensor_value_info("x", T.FLOAT, [3, 4])], [h.make_tensor_value_info("y", T.FLOAT, [2])],
                  inits, name="elementwise")


def gather(op: str = "Gather"):
    """An embedding-like lookup: a constant table indexed by a run-time input."""
    T, h, nh = _h()
    table = _w("table", [10, 4], 21)
    if op == "Gather":
        node, idx, out = h.make_node("Gather", ["table", "idx"], ["y"], axis=0, name="gather"), [3], [3, 4]
    elif op == "GatherElements":
        node, idx, out = h.make_node("GatherElements", ["table", "idx"], ["y"], axis=0, name="gather_el"), [2, 4], [2, 4]
    elif op == "GatherND":
        node, idx, out = h.make_node("GatherND", ["table", "idx"], ["y"], name="gather_nd"), [3, 2], [3]
    elif op == "ScatterND":
        upd = nh.from_array(np.ones((3,), np.float32), "upd")
        node = h.make_node("ScatterND", ["table", "idx", "upd"], ["y"], name="scatter_nd")
        return _model([node], [h.make_tensor_value_info("idx", T.INT64, [3, 2])],
                      [h.make_tensor_value_info("y", T.FLOAT, [10, 4])], [table, upd], name="scatter_nd")
    else:
        raise ValueError(op)
    return _model([node], [h.make_tensor_value_info("idx", T.INT64, idx)], [h.make_tensor_value_info("y", T.FLOAT, out)],
                  [table], name=op.lower())


def staged():
    """Abs -> Det -> Add -> Mul: compiled with fallback="ort" while Det's lowering is taken
    out (fixtures.build), its artifact is in stages whose files the manifest names."""
    T, h, nh = _h()
    nodes = [h.make_node("Abs", ["x"], ["r"], name="abs"), h.make_node("Det", ["r"], ["g"], name="det"),
             h.make_node("Add", ["g", "bias"], ["a"], name="add"), h.make_node("Mul", ["a", "a"], ["y"], name="mul")]
    return _model(nodes, [h.make_tensor_value_info("x", T.FLOAT, [2, 4, 4])], [h.make_tensor_value_info("y", T.FLOAT, [2])],
                  [_w("bias", [2], 31)], name="staged")


BUILDERS = {"mlp": mlp, "numerics": numerics, "elementwise": elementwise, "gather": lambda: gather("Gather"),
            "gather_elements": lambda: gather("GatherElements"), "gather_nd": lambda: gather("GatherND"),
            "scatter_nd": lambda: gather("ScatterND"), "staged": staged}


@lru_cache(maxsize=None)
def model_bytes(name: str) -> bytes:
    if name == "tiny_cnn":
        return TINY_CNN.read_bytes()
    return BUILDERS[name]().SerializeToString()


def load(name: str):
    import onnx

    return onnx.load_from_string(model_bytes(name))


def inputs_for(model, seed: int = 0) -> dict:
    """Random inputs fitting ``model``'s declared inputs (indices in range for int inputs)."""
    from onnx import helper

    rng = np.random.default_rng(seed)
    inits = {t.name for t in model.graph.initializer}
    feeds = {}
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        tt = vi.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else 1 for d in tt.shape.dim]
        dt = helper.tensor_dtype_to_np_dtype(tt.elem_type)
        if np.issubdtype(dt, np.integer):
            feeds[vi.name] = rng.integers(0, 2, size=shape).astype(dt)
        else:
            feeds[vi.name] = rng.standard_normal(shape).astype(dt)
    return feeds
