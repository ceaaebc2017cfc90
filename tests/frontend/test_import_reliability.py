"""What reads a model refuses bad input cleanly (issue 10): external data outside the
model's folder, an input with a default folded away, data that does not match its dims
(which hung onnx's shape inference), negative dims, text that is not UTF-8, out-of-range
constant Gather indices, stored shapes that contradict the ops, and folds that would
allocate without bound."""

import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphopt
from graphopt.errors import ModelLoadError
from graphopt.testing.oracle import oracle_session


def vi(name, shape, t=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, t, shape)


def model(nodes, inputs, outputs, inits=(), ir=10, opset=21, value_info=()):
    g = helper.make_graph(nodes, "m", inputs, outputs, initializer=list(inits), value_info=list(value_info))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=ir)


# ------------------------------------------------------------------------------ external data
W = np.arange(2000, dtype=np.float32)


def external_model(location):
    w = numpy_helper.from_array(W, "w")
    w.ClearField("raw_data")
    w.data_location = TensorProto.EXTERNAL
    w.external_data.add(key="location", value=location)
    return model([helper.make_node("Add", ["x", "w"], ["y"], name="add")], [vi("x", [2000])], [vi("y", [2000])], [w])


def test_external_data_of_bytes_or_a_proto_is_not_read_from_the_working_directory(tmp_path, monkeypatch):
    W.tofile(tmp_path / "w.bin")
    monkeypatch.chdir(tmp_path)  # where the data file is: it must still not be read from there
    m = external_model("w.bin")
    for arg in (m, m.SerializeToString()):
        with pytest.raises(ModelLoadError, match="tensor 'w'.*base_dir"):
            graphopt.import_onnx(arg)
    g = graphopt.import_onnx(m, base_dir=tmp_path)  # named folder: fine
    np.testing.assert_array_equal(g.lookup("w").const.numpy(), W)
    assert m.graph.initializer[0].data_location == TensorProto.EXTERNAL  # the caller's model is untouched


@pytest.mark.parametrize("how", ["dotdot", "absolute", "symlink"])
def test_external_data_must_stay_inside_the_model_folder(tmp_path, how):
    folder = tmp_path / "model"
    folder.mkdir()
    secret = tmp_path / "secret.bin"
    W.tofile(secret)
    location = {"dotdot": "../secret.bin", "absolute": str(secret), "symlink": "link.bin"}[how]
    if how == "symlink":
        os.symlink(secret, folder / "link.bin")
    path = folder / "m.onnx"
    onnx.save(external_model(location), path)
    with pytest.raises(ModelLoadError) as e:
        graphopt.import_onnx(path)
    msg = str(e.value)
    assert str(path) in msg and "tensor 'w'" in msg and "folder" in msg
    with pytest.raises(ModelLoadError):  # a base_dir cannot be escaped either
        graphopt.import_onnx(external_model(location), base_dir=folder)


def test_external_data_inside_the_folder_loads(tmp_path):
    W.tofile(tmp_path / "w.bin")
    onnx.save(external_model("w.bin"), tmp_path / "m.onnx")
    g = graphopt.import_onnx(tmp_path / "m.onnx")
    np.testing.assert_array_equal(g.lookup("w").const.numpy(), W)


# ------------------------------------------------------------------------------ input defaults
def _add_with_default(ir):
    b = numpy_helper.from_array(np.ones(3, np.float32), "b")
    inputs = [vi("x", [3]), vi("b", [3])]
    return model([helper.make_node("Add", ["x", "b"], ["y"], name="add")], inputs, [vi("y", [3])], [b], ir=ir,
                 opset=21 if ir >= 4 else 9)


def test_an_input_with_a_default_stays_an_input_and_the_callers_value_wins():
    g = graphopt.run_passes(graphopt.import_onnx(_add_with_default(ir=10)), "O1")
    assert [v.name for v in g.inputs] == ["x", "b"] and not g.lookup("b").is_constant
    out = graphopt.export_onnx(g)
    assert [i.name for i in out.graph.input] == ["x", "b"]
    x, b = np.arange(3, dtype=np.float32), np.array([10, 20, 30], np.float32)
    (y,) = oracle_session(out.SerializeToString()).run(None, {"x": x, "b": b})
    np.testing.assert_array_equal(y, x + b)


def test_ir3_initializers_listed_as_inputs_stay_constants():
    g = graphopt.import_onnx(_add_with_default(ir=3))
    assert [v.name for v in g.inputs] == ["x"] and g.lookup("b").is_constant


# ------------------------------------------------------------------------------ data vs dims
class Reached(BaseException):
    """Raised by onnx's checker and shape inference here: the bad data must be refused first."""


def _no_onnx_passes(monkeypatch):
    def boom(*a, **k):
        raise Reached("onnx's checker or shape inference ran on a model with bad tensor data")

    monkeypatch.setattr(onnx.shape_inference, "infer_shapes", boom)
    monkeypatch.setattr(onnx.checker, "check_model", boom)


def _declared_tensor(dims, **data):
    t = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=dims)
    for k, v in data.items():
        if k == "raw_data":
            t.raw_data = v
        else:
            getattr(t, k).extend(v)
    return t


@pytest.mark.parametrize("dims, data, what", [
    ([1 << 20, 1 << 20], {}, "declare 1099511627776 elements"),           # 2^40 elements, no data
    ([4], {"raw_data": b"\0" * 12}, "raw_data holds 12 bytes"),
    ([4], {"float_data": [1.0, 2.0]}, "float_data holds 2"),
    ([2], {"float_data": [1.0, 2.0], "raw_data": b"\0" * 8}, "both raw_data and float_data"),
    ([2], {"int64_data": [1, 2]}, "int64_data"),
    ([-2], {}, "negative"),
])
def test_tensor_data_must_match_its_dims_before_any_inference(monkeypatch, dims, data, what):
    m = model([helper.make_node("Add", ["x", "w"], ["y"], name="a")], [vi("x", [1])], [vi("y", None)],
              [_declared_tensor(dims, **data)])
    _no_onnx_passes(monkeypatch)
    with pytest.raises(ModelLoadError, match=f"tensor 'w'.*{what}"):
        graphopt.import_onnx(m.SerializeToString())


def test_the_cli_refuses_a_huge_declared_initializer(tmp_path):
    path = tmp_path / "huge.onnx"
    m = model([helper.make_node("Add", ["x", "w"], ["y"], name="a")], [vi("x", [1])], [vi("y", None)],
              [_declared_tensor([1 << 20, 1 << 20])])
    path.write_bytes(m.SerializeToString())
    r = subprocess.run([sys.executable, "-m", "graphopt", "show", str(path)], capture_output=True, text=True)
    assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
    assert "graphopt: error:" in r.stderr and "tensor 'w'" in r.stderr and "Traceback" not in r.stderr


# ------------------------------------------------------------------------------ negative dims
@pytest.mark.parametrize("where", ["input", "output"])
def test_negative_dims_name_the_value_and_the_dim(where):
    x = vi("x", [-1, 3] if where == "input" else [2, 3])
    y = vi("y", [2, -5] if where == "output" else [2, 3])
    m = model([helper.make_node("Relu", ["x"], ["y"], name="r")], [x], [y])
    name, dim = ("x", "dim 0 is -1") if where == "input" else ("y", "dim 1 is -5")
    with pytest.raises(ModelLoadError, match=f"{where} '{name}': {dim}"):
        graphopt.import_onnx(m)


# ------------------------------------------------------------------------------ UTF-8
def _utf8_model():
    return helper.make_model(helper.make_graph(
        [helper.make_node("Relu", ["x"], ["tQQ"], name="rQQ", doc_string="DQQ"),
         helper.make_node("Resize", ["tQQ", "", "sc"], ["y"], name="rs", mode="nearest")],
        "GQQ", [vi("x", [1, 1, 2, 2])], [vi("y", [1, 1, 4, 4])],
        [helper.make_tensor("sc", TensorProto.FLOAT, [4], [1, 1, 2, 2])]), opset_imports=[helper.make_opsetid("", 21)])


@pytest.mark.parametrize("tag, names", [
    (b"rQQ", "node 'r"), (b"DQQ", "node 'rQQ' (Relu): field 'doc_string'"), (b"tQQ", "node 'rQQ' (Relu): field 'output'"),
    (b"GQQ", "field 'name'"),
])
def test_text_that_is_not_utf8_is_a_clean_error(tag, names):
    data = _utf8_model().SerializeToString().replace(tag, tag[:1] + b"\xff\xfe")
    with pytest.raises(ModelLoadError, match="not valid UTF-8") as e:
        graphopt.import_onnx(data)
    assert names in str(e.value)


def test_an_attribute_string_that_is_not_utf8_names_the_node_and_attribute():
    m = _utf8_model()
    m.graph.node[1].attribute[0].s = b"near\xffest"
    with pytest.raises(ModelLoadError, match="node 'rs' \\(Resize\\): attribute 'mode' is not valid UTF-8"):
        graphopt.import_onnx(m)


# ------------------------------------------------------------------------------ Gather
@pytest.mark.parametrize("index", [3, -4, 100000000])
@pytest.mark.parametrize("data_is_constant", [False, True])
def test_a_constant_gather_index_out_of_range_is_refused(index, data_is_constant):
    idx = numpy_helper.from_array(np.array([0, index], np.int64), "i")
    inits = [idx] + ([numpy_helper.from_array(np.arange(3, dtype=np.float32), "x")] if data_is_constant else [])
    inputs = [] if data_is_constant else [vi("x", [3])]
    m = model([helper.make_node("Gather", ["x", "i"], ["y"], name="g", axis=0)], inputs, [vi("y", [2])], inits)
    with pytest.raises(ModelLoadError, match=f"node 'g' \\(Gather\\): index {index} is out of range"):
        graphopt.import_onnx(m)


def test_gather_elements_constant_index_out_of_range_is_refused():
    idx = numpy_helper.from_array(np.array([[0, 2]], np.int64), "i")
    m = model([helper.make_node("GatherElements", ["x", "i"], ["y"], name="ge", axis=1)], [vi("x", [1, 2])],
              [vi("y", [1, 2])], [idx])
    with pytest.raises(ModelLoadError, match="node 'ge' .*index 2 is out of range"):
        graphopt.import_onnx(m)


def test_negative_gather_indices_in_range_are_fine():
    idx = numpy_helper.from_array(np.array([-3, 2], np.int64), "i")
    m = model([helper.make_node("Gather", ["x", "i"], ["y"], name="g", axis=0)], [vi("x", [3])], [vi("y", [2])], [idx])
    assert str(graphopt.import_onnx(m).outputs[0].type) == "f32[2]"


# ------------------------------------------------------------------------------ stored shapes
def test_a_stored_output_shape_that_contradicts_the_op_is_refused():
    m = model([helper.make_node("Relu", ["x"], ["y"], name="r")], [vi("x", [3])], [vi("y", [4])])
    with pytest.raises(ModelLoadError, match=r"value 'y': the model declares f32\[4\], but node 'r' \(Relu\) "
                                             r"computes f32\[3\]"):
        graphopt.import_onnx(m)


def test_a_stored_value_info_that_contradicts_the_op_is_refused():
    m = model([helper.make_node("Relu", ["x"], ["t"], name="r"), helper.make_node("Relu", ["t"], ["y"], name="r2")],
              [vi("x", [3])], [vi("y", [3])], value_info=[vi("t", [5, 2])])
    with pytest.raises(ModelLoadError, match=r"value 't': the model declares f32\[5, 2\].*f32\[3\]"):
        graphopt.import_onnx(m)


def test_stored_symbolic_dims_are_no_contradiction():
    m = model([helper.make_node("Relu", ["x"], ["y"], name="r")], [vi("x", ["n", 3])], [vi("y", ["m", 3])])
    assert graphopt.import_onnx(m).outputs[0].type.shape[1] == 3


# ------------------------------------------------------------------------------ folding bounds
def _range_to(limit_half):
    I = lambda n, v: numpy_helper.from_array(np.array(v, np.int64), n)  # noqa: E731
    return model([helper.make_node("Add", ["b", "b"], ["limit"], name="add"),
                  helper.make_node("Range", ["a", "limit", "c"], ["r"], name="rg"),
                  helper.make_node("ReduceSum", ["r"], ["y"], keepdims=0, name="rs")],
                 [], [vi("y", [], TensorProto.INT64)], [I("a", 0), I("b", limit_half), I("c", 1)])


def test_folding_never_evaluates_a_range_whose_computed_size_is_over_the_limit(monkeypatch):
    from graphopt.passes.fold_constants import FoldConstants

    evaluated = []
    real = FoldConstants._run

    def spy(self, g, nodes, *a, **k):
        evaluated.extend(n.op_type for n in nodes)
        if "Range" in evaluated:
            raise Reached("a 2^34-element Range was handed to onnxruntime")
        return real(self, g, nodes, *a, **k)

    monkeypatch.setattr(FoldConstants, "_run", spy)
    g = graphopt.run_passes(graphopt.import_onnx(_range_to(1 << 33)), "fold-constants")
    assert "Range" in [n.op_type for n in g.nodes] and "Range" not in evaluated


def test_a_range_of_computed_size_within_the_limit_still_folds():
    g = graphopt.run_passes(graphopt.import_onnx(_range_to(5)), "fold-constants")
    assert not g.nodes and int(g.outputs[0].const.numpy()) == sum(range(10))


def test_a_graph_with_no_outputs_is_refused():
    m = model([helper.make_node("Relu", ["x"], ["y"], name="r")], [vi("x", [3])], [])
    with pytest.raises(ModelLoadError, match="no outputs"):
        graphopt.import_onnx(m)
