"""Spec violations built with onnx.helper, each with the expectation the ONNX spec gives
it, run through the API (import, O1, export) and the CLI (show, opt -O1)."""

from __future__ import annotations

import numpy as np

from . import checks
from .case import case
from .fam_onnx import run_model_bytes
from .models import IR_VERSION, OPSET
from .outcome import ACCEPT, EITHER, ERROR, Obs


def _h():
    from onnx import TensorProto, helper, numpy_helper

    return TensorProto, helper, numpy_helper


def _vi(name, shape, elem=None):
    T, h, _ = _h()
    return h.make_tensor_value_info(name, T.FLOAT if elem is None else elem, shape)


def _m(nodes, inputs, outputs, inits=(), opset=OPSET, ir=IR_VERSION, name="spec"):
    _, h, _ = _h()
    g = h.make_graph(nodes, name, inputs, outputs, initializer=list(inits))
    m = h.make_model(g, opset_imports=[h.make_opsetid("", opset)], producer_name="graphopt-fuzz")
    m.ir_version = ir
    return m


def _c(name, arr):
    _, _, nh = _h()
    return nh.from_array(np.asarray(arr), name)


def _unary(op, **attrs):
    _, h, _ = _h()
    return _m([h.make_node(op, ["x"], ["y"], name="n0", **attrs)], [_vi("x", [2, 3])], [_vi("y", [2, 3])])


def _attr(op, attr_name, value, shape_in=(2, 3), shape_out=(2, 3), extra=None):
    """A node whose attribute ``attr_name`` carries a value of the wrong type."""
    _, h, _ = _h()
    n = h.make_node(op, ["x"], ["y"], name="n0")
    n.attribute.append(h.make_attribute(attr_name, value))
    return _m([n], [_vi("x", list(shape_in))], [_vi("y", list(shape_out))])


def _binary(a="x", b="z", op="Add", in_types=None, out_shape=(2, 3)):
    T, h, _ = _h()
    ta, tb = in_types or (T.FLOAT, T.FLOAT)
    return _m([h.make_node(op, [a, b], ["y"], name="n0")], [_vi("x", [2, 3], ta), _vi("z", [2, 3], tb)],
              [_vi("y", list(out_shape))])


def _huge(where: str):
    """An initializer that declares 2^40 elements and holds none (or four bytes)."""
    T, h, _ = _h()
    big = T()
    big.name, big.data_type = "w", T.FLOAT
    big.dims.extend([1 << 20, 1 << 20])
    if where == "raw4":
        big.raw_data = b"\0\0\0\0"
    if where == "unused":
        return _m([h.make_node("Relu", ["x"], ["y"], name="n0")], [_vi("x", [2, 3])], [_vi("y", [2, 3])], [big])
    if where == "shape":
        nodes = [h.make_node("Shape", ["w"], ["y"], name="n0")]
        return _m(nodes, [], [_vi("y", [2], T.INT64)], [big])
    nodes = [h.make_node("ReduceSum", ["w"], ["s"], keepdims=0, name="n0"), h.make_node("Add", ["x", "s"], ["y"], name="n1")]
    return _m(nodes, [_vi("x", [2, 3])], [_vi("y", [2, 3])], [big])


def _negative_dim(where: str):
    T, h, _ = _h()
    m = _unary("Relu")
    vi = m.graph.input[0] if where == "input" else m.graph.output[0]
    vi.type.tensor_type.shape.dim[0].dim_value = -1
    return m


def _cycle():
    _, h, _ = _h()
    nodes = [h.make_node("Relu", ["b"], ["a"], name="n0"), h.make_node("Relu", ["a"], ["b"], name="n1"),
             h.make_node("Add", ["x", "a"], ["y"], name="n2")]
    return _m(nodes, [_vi("x", [2, 3])], [_vi("y", [2, 3])])


def _self_loop():
    _, h, _ = _h()
    return _m([h.make_node("Add", ["x", "y"], ["y"], name="n0")], [_vi("x", [2, 3])], [_vi("y", [2, 3])])


def _dangling(which: str):
    _, h, _ = _h()
    if which == "node-input":
        return _m([h.make_node("Add", ["x", "nope"], ["y"], name="n0")], [_vi("x", [2, 3])], [_vi("y", [2, 3])])
    if which == "graph-output":
        return _m([h.make_node("Relu", ["x"], ["y"], name="n0")], [_vi("x", [2, 3])], [_vi("nope", [2, 3])])
    return _m([h.make_node("Relu", ["x"], ["y"], name="n0"), h.make_node("Relu", ["q"], ["r"], name="n1")],
              [_vi("x", [2, 3])], [_vi("y", [2, 3])])


def _duplicate(which: str):
    _, h, _ = _h()
    if which == "node-outputs":
        nodes = [h.make_node("Relu", ["x"], ["y"], name="n0"), h.make_node("Sigmoid", ["x"], ["y"], name="n1")]
        return _m(nodes, [_vi("x", [2, 3])], [_vi("y", [2, 3])])
    if which == "graph-outputs":
        return _m([h.make_node("Relu", ["x"], ["y"], name="n0")], [_vi("x", [2, 3])], [_vi("y", [2, 3]), _vi("y", [2, 3])])
    if which == "inputs":
        return _m([h.make_node("Relu", ["x"], ["y"], name="n0")], [_vi("x", [2, 3]), _vi("x", [2, 3])], [_vi("y", [2, 3])])
    return _m([h.make_node("Relu", ["x"], ["x"], name="n0")], [_vi("x", [2, 3])], [_vi("x", [2, 3])])


def _missing_input(op: str):
    _, h, _ = _h()
    ins = {"Add": ["x"], "MatMul": ["x"], "Gather": ["x"], "Reshape": ["x"], "Conv": ["x"], "Where": ["x", "x"]}[op]
    return _m([h.make_node(op, ins, ["y"], name="n0")], [_vi("x", [2, 3])], [_vi("y", [2, 3])])


def _input_is_initializer(ir: int):
    """x is a graph input with a default (an initializer of the same name)."""
    _, h, _ = _h()
    nodes = [h.make_node("Mul", ["x", "k"], ["m"], name="n0"), h.make_node("Relu", ["m"], ["y"], name="n1")]
    return _m(nodes, [_vi("x", [2, 3])], [_vi("y", [2, 3])],
              [_c("x", np.full((2, 3), 5, np.float32)), _c("k", np.float32(2).reshape(()))], ir=ir)


def _gather_const(index, op="Gather"):
    T, h, _ = _h()
    data = _c("data", np.arange(15, dtype=np.float32).reshape(5, 3))
    if op == "Gather":
        idx, node = _c("i", np.array(index, np.int64)), h.make_node("Gather", ["data", "i"], ["g"], axis=0, name="n0")
        shape = [len(index), 3]
    else:
        idx = _c("i", np.array([[index[0], 0, 1]], np.int64))
        node, shape = h.make_node("GatherElements", ["data", "i"], ["g"], axis=0, name="n0"), [1, 3]
    nodes = [node, h.make_node("Add", ["g", "x"], ["y"], name="n1")]
    return _m(nodes, [_vi("x", shape)], [_vi("y", shape)], [data, idx])


def _output_shape(kind: str):
    T, h, _ = _h()
    if kind == "dims":
        return _m([h.make_node("MatMul", ["x", "w"], ["y"], name="n0")], [_vi("x", [2, 3])], [_vi("y", [2, 5])],
                  [_c("w", np.ones((3, 4), np.float32))])
    if kind == "rank":
        return _m([h.make_node("Relu", ["x"], ["y"], name="n0")], [_vi("x", [2, 3])], [_vi("y", [6])])
    return _m([h.make_node("Relu", ["x"], ["y"], name="n0")], [_vi("x", [2, 3])], [_vi("y", [2, 3], T.INT64)])


def _non_utf8(where: str) -> bytes:
    """Bytes that are not UTF-8 in a string field (placed by patching the serialized model:
    protobuf's Python API refuses to set them)."""
    _, h, _ = _h()
    mark = b"ZQZQZQ"
    if where == "node-name":
        m = _m([h.make_node("Relu", ["x"], ["y"], name=mark.decode())], [_vi("x", [2, 3])], [_vi("y", [2, 3])])
    elif where == "value-name":
        nodes = [h.make_node("Relu", ["x"], [mark.decode()], name="n0"), h.make_node("Relu", [mark.decode()], ["y"], name="n1")]
        m = _m(nodes, [_vi("x", [2, 3])], [_vi("y", [2, 3])])
    elif where == "attr-string":
        m = _m([h.make_node("Pad", ["x", "p"], ["y"], mode=mark.decode(), name="n0")], [_vi("x", [2, 3])], [_vi("y", [4, 5])],
               [_c("p", np.ones(4, np.int64))])
    elif where == "graph-name":
        m = _unary("Relu")
        m.graph.name = mark.decode()
    else:  # doc string: free text
        m = _unary("Relu")
        m.graph.node[0].doc_string = mark.decode()
    return m.SerializeToString().replace(mark, b"\xff\xfe\xc3\x28\x80Z")


def _data_mismatch():
    T, h, _ = _h()
    w = T()
    w.name, w.data_type, w.raw_data = "w", T.FLOAT, b"\0" * 8
    w.dims.extend([2, 3])
    return _m([h.make_node("Add", ["x", "w"], ["y"], name="n0")], [_vi("x", [2, 3])], [_vi("y", [2, 3])], [w])


def _if_bad_branch():
    T, h, _ = _h()
    then_g = h.make_graph([h.make_node("Relu", ["x"], ["a"], name="t0")], "then", [], [_vi("a", [2, 3])])
    else_g = h.make_graph([h.make_node("Relu", ["x"], ["a"], name="e0"), h.make_node("Relu", ["x"], ["b"], name="e1")],
                          "else", [], [_vi("a", [2, 3]), _vi("b", [2, 3])])
    n = h.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g, name="if0")
    return _m([n], [_vi("x", [2, 3]), _vi("c", [], T.BOOL)], [_vi("y", [2, 3])])


def _opset(version=None, domain=""):
    _, h, _ = _h()
    g = h.make_graph([h.make_node("Relu", ["x"], ["y"], name="n0")], "g", [_vi("x", [2, 3])], [_vi("y", [2, 3])])
    ops = [] if version is None else [h.make_opsetid(domain, version)]
    m = h.make_model(g, opset_imports=ops)
    m.ir_version = IR_VERSION
    return m


def _untyped_input():
    _, h, _ = _h()
    m = _unary("Relu")
    m.graph.input[0].ClearField("type")
    return m


def _reshape_bad():
    _, h, _ = _h()
    return _m([h.make_node("Reshape", ["x", "s"], ["y"], name="n0")], [_vi("x", [2, 3])], [_vi("y", [4, 2])],
              [_c("s", np.array([4, 2], np.int64))])


def _conv_channels():
    _, h, _ = _h()
    return _m([h.make_node("Conv", ["x", "w"], ["y"], name="n0")], [_vi("x", [1, 3, 4, 4])], [_vi("y", [1, 2, 2, 2])],
              [_c("w", np.ones((2, 5, 3, 3), np.float32))])


def _unknown_op():
    _, h, _ = _h()
    return _m([h.make_node("FooBarBaz", ["x"], ["y"], name="n0")], [_vi("x", [2, 3])], [_vi("y", [2, 3])])


def _empty_graph():
    return _m([], [_vi("x", [2, 3])], [])


def _valid():
    T, h, _ = _h()
    nodes = [h.make_node("MatMul", ["x", "w"], ["m"], name="n0"), h.make_node("Relu", ["m"], ["y"], name="n1")]
    return _m(nodes, [_vi("x", [2, 3])], [_vi("y", [2, 4])], [_c("w", np.ones((3, 4), np.float32))])


def _types():
    from onnx import TensorProto

    return TensorProto


# name: (builder, expectation, what it is)
SPEC = {
    "attr-perm-floats": (lambda: _attr("Transpose", "perm", [1.0, 0.0], shape_out=(3, 2)), ERROR, "Transpose perm as floats"),
    "attr-axis-string": (lambda: _attr("Softmax", "axis", "one"), ERROR, "Softmax axis as a string"),
    "attr-alpha-ints": (lambda: _attr("LeakyRelu", "alpha", [1, 2]), ERROR, "LeakyRelu alpha as ints"),
    "attr-axis-tensor": (lambda: _attr("Softmax", "axis", _c("t", np.int64(1).reshape(()))), ERROR,
                         "Softmax axis as a tensor"),
    "attr-perm-out-of-range": (lambda: _attr("Transpose", "perm", [0, 5], shape_out=(2, 3)), ERROR,
                               "Transpose perm naming axis 5 of a rank-2 input"),
    "attr-unknown": (lambda: _attr("Relu", "bogus", 3), ERROR, "an attribute Relu does not have"),
    "missing-input-Add": (lambda: _missing_input("Add"), ERROR, "Add with one input"),
    "missing-input-MatMul": (lambda: _missing_input("MatMul"), ERROR, "MatMul with one input"),
    "missing-input-Gather": (lambda: _missing_input("Gather"), ERROR, "Gather without indices"),
    "missing-input-Reshape": (lambda: _missing_input("Reshape"), ERROR, "Reshape without a shape"),
    "missing-input-Conv": (lambda: _missing_input("Conv"), ERROR, "Conv without weights"),
    "missing-input-Where": (lambda: _missing_input("Where"), ERROR, "Where with two inputs"),
    "dangling-node-input": (lambda: _dangling("node-input"), ERROR, "a node reads a value nothing defines"),
    "dangling-graph-output": (lambda: _dangling("graph-output"), ERROR, "a graph output nothing defines"),
    "dangling-dead-node": (lambda: _dangling("dead"), ERROR, "an unused node reads an undefined value"),
    "duplicate-node-outputs": (lambda: _duplicate("node-outputs"), ERROR, "two nodes define y"),
    "duplicate-graph-outputs": (lambda: _duplicate("graph-outputs"), None, "y listed twice as a graph output"),
    "duplicate-inputs": (lambda: _duplicate("inputs"), ERROR, "x listed twice as an input"),
    "duplicate-input-redefined": (lambda: _duplicate("redefine"), ERROR, "a node redefines the input x"),
    "cycle": (_cycle, ERROR, "two nodes feeding each other"),
    "self-loop": (_self_loop, ERROR, "a node reading its own output"),
    "type-mismatch-add": (lambda: _binary(in_types=(_types().FLOAT, _types().INT64)), ERROR, "Add of float32 and int64"),
    "type-mismatch-matmul": (lambda: _binary(op="MatMul", in_types=(_types().FLOAT, _types().DOUBLE)), ERROR,
                             "MatMul of float32 and float64"),
    "type-bad-op-dtype": (lambda: _m([_h()[1].make_node("Sigmoid", ["x"], ["y"], name="n0")],
                                     [_vi("x", [2, 3], _types().INT64)], [_vi("y", [2, 3], _types().INT64)]), ERROR,
                          "Sigmoid of int64"),
    "negative-dim-input": (lambda: _negative_dim("input"), ERROR, "an input of shape [-1, 3]"),
    "negative-dim-output": (lambda: _negative_dim("output"), ERROR, "an output of shape [-1, 3]"),
    "huge-dim-used": (lambda: _huge("used"), ERROR, "a used initializer of 2^40 elements without data"),
    "huge-dim-unused": (lambda: _huge("unused"), ERROR, "an unused initializer of 2^40 elements without data"),
    "huge-dim-raw4": (lambda: _huge("raw4"), ERROR, "an initializer of 2^40 elements with 4 bytes of data"),
    "huge-dim-shape": (lambda: _huge("shape"), ERROR, "Shape of an initializer of 2^40 elements without data"),
    "non-utf8-node-name": (lambda: _non_utf8("node-name"), None, "a node name that is not UTF-8"),
    "non-utf8-value-name": (lambda: _non_utf8("value-name"), None, "a value name that is not UTF-8"),
    "non-utf8-attr": (lambda: _non_utf8("attr-string"), ERROR, "Pad mode that is not UTF-8"),
    "non-utf8-graph-name": (lambda: _non_utf8("graph-name"), None, "a graph name that is not UTF-8"),
    "non-utf8-doc-string": (lambda: _non_utf8("doc"), None, "a doc string that is not UTF-8"),
    "gather-const-index-5": (lambda: _gather_const([1, 5]), ERROR, "Gather of 5 rows at constant index 5"),
    "gather-const-index-big": (lambda: _gather_const([100000000]), ERROR, "Gather at constant index 1e8"),
    "gather-const-index-neg": (lambda: _gather_const([-6]), ERROR, "Gather of 5 rows at constant index -6"),
    "gather-const-index-ok-neg": (lambda: _gather_const([-5, 4]), ACCEPT, "Gather at constant indices -5 and 4 (valid)"),
    "gather-elements-const-oor": (lambda: _gather_const([7], "GatherElements"), ERROR,
                                  "GatherElements at constant index 7 of 5"),
    "output-shape-contradicts-dims": (lambda: _output_shape("dims"), None, "stored output shape [2, 5] for [2, 4]"),
    "output-shape-contradicts-rank": (lambda: _output_shape("rank"), None, "stored output shape [6] for [2, 3]"),
    "output-type-contradicts": (lambda: _output_shape("type"), ERROR, "stored output type int64 for float32"),
    "data-shorter-than-dims": (_data_mismatch, ERROR, "an initializer with 8 bytes for 6 floats"),
    "if-branch-arity": (_if_bad_branch, ERROR, "If whose branches have 1 and 2 outputs"),
    "opset-missing": (lambda: _opset(None), ERROR, "no opset import"),
    "opset-future": (lambda: _opset(99), ERROR, "opset 99"),
    "opset-unknown-domain": (lambda: _opset(1, "com.example.nothing"), ERROR, "only an unknown domain imported"),
    "untyped-input": (_untyped_input, ERROR, "an input without a type"),
    "reshape-element-count": (_reshape_bad, ERROR, "Reshape of 6 elements to [4, 2]"),
    "conv-channels": (_conv_channels, ERROR, "Conv of 3 channels with 5-channel weights"),
    "unknown-op": (_unknown_op, ERROR, "an op no opset defines"),
    "empty-graph": (_empty_graph, ERROR, "a graph with no outputs"),
    "valid-control": (_valid, ACCEPT, "a valid MatMul+Relu (control case)"),
}


def run_spec(ctx, name: str, via: str) -> Obs:
    build, expect, what = SPEC[name]
    data = build()
    data = data if isinstance(data, bytes) else data.SerializeToString()
    if expect is None:
        expect, why = checks.spec_expect(data)
        what = f"{what}; {why}"
    obs = Obs(expect=expect, note=what)
    run_model_bytes(ctx, obs, data, via, name)
    return obs


def run_input_initializer(ctx, ir: int, via: str) -> Obs:
    """An input that is also an initializer (IR >= 4: a default): the caller's value must win."""
    import onnx

    import graphopt

    data = _input_is_initializer(ir).SerializeToString()
    x = np.arange(6, dtype=np.float32).reshape(2, 3) - 2
    want = np.maximum(x * 2, 0)
    obs = Obs(expect=ACCEPT if ir >= 4 else ERROR, note=f"IR {ir}: input x with a default")
    d = ctx.case_dir(f"init-input-{ir}-{via}")
    path = d / "model.onnx"
    path.write_bytes(data)
    if via == "opt":
        c = obs.cli(["opt", path, "-O1", "-o", d / "out.onnx"], timeout=90)
        if c.status == "ok":
            out = onnx.load(str(d / "out.onnx"))
            if [i.name for i in out.graph.input] != ["x"]:
                obs.wrong = f"the optimized model's inputs are {[i.name for i in out.graph.input]}, not ['x']"
            else:
                obs.wrong = checks.compare([want], checks.run_ort(out.SerializeToString(), {"x": x}),
                                           "the optimized model ignores the caller's x")
    elif via == "compile":
        with obs.call("graphopt.optimize(model)(x)"):
            got = graphopt.optimize(str(path))(x)
            obs.wrong = checks.compare([want], [got], "the compiled model ignores the caller's x")
    else:
        with obs.call("import_onnx + run_passes(O1) + export_onnx"):
            g = graphopt.run_passes(graphopt.import_onnx(str(path)), "O1")
            out = graphopt.export_onnx(g)
            names = [i.name for i in out.graph.input]
            obs.wrong = (f"the exported model's inputs are {names}, not ['x']" if names != ["x"] else
                         checks.compare([want], checks.run_ort(out.SerializeToString(), {"x": x}),
                                        "the exported model ignores the caller's x"))
    return obs


def cases(seed: int) -> list:
    out = []
    for i, (name, (_, expect, what)) in enumerate(SPEC.items()):
        # Every violation through the API; through the CLI (seconds per start) a third
        # each for show and opt, and every one of the hangs and encodings.
        cli = ("show", "opt") if name.startswith(("huge", "non-utf8", "negative")) else (("show",), ("opt",), ())[i % 3]
        for via in ("api", *cli):
            timeout = 60 if name.startswith("huge") else 90
            out.append(case("onnx-spec", f"{name}.{via}", run_spec, args=dict(name=name, via=via), timeout=timeout,
                            sample=via == "api" and (i % 3 == 0 or name.startswith(("huge", "gather"))),
                            what=f"{via}: {what}"))
    for ir in (3, 4, 8, 10):
        for via in ("api", "opt", "compile"):
            if ir == 3 and via != "api":
                continue
            out.append(case("onnx-input-initializer", f"ir{ir}.{via}", run_input_initializer, args=dict(ir=ir, via=via),
                            sample=via == "api", timeout=120, what=f"{via}: IR {ir} model whose input x has a default"))
    return out
