"""Inputs TVM cannot read in place (misaligned, strided, read-only, big-endian, 0-d, from
torch) are copied, not refused and not misread; aligned contiguous ones are read in place.
Numbers are checked against onnxruntime."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

import graphopt
from graphopt.runtime.tensors import ALIGN, COPY_BELOW


def _model(op="Add", shape=(32, 64)):
    # Identity lowers to an elementwise kernel whose vector loads assume 64-byte aligned
    # data: passed a misaligned array in place, it crashed the process.
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, list(shape))
    nodes = [helper.make_node(op, ["x", "x"] if op == "Add" else ["x"], ["y"])]
    return helper.make_model(helper.make_graph(nodes, "lay", [x], [y]), opset_imports=[helper.make_opsetid("", 21)])


def _oracle(model, x):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": np.ascontiguousarray(x, dtype=np.float32)})[0]


def _at_offset(a: np.ndarray, offset: int) -> np.ndarray:
    """A C-contiguous copy of ``a`` whose data starts ``offset`` bytes past a 64-byte boundary."""
    buf = np.empty(a.nbytes + 2 * ALIGN, np.uint8)
    start = -buf.ctypes.data % ALIGN + offset
    out = buf[start:start + a.nbytes].view(a.dtype).reshape(a.shape)
    out[...] = a
    assert out.ctypes.data % ALIGN == offset and out.flags.c_contiguous
    return out


@pytest.fixture(scope="module", params=["Add", "Identity"])
def case(request):
    model = _model(request.param)
    return model, graphopt.optimize(model, opt_level=None)


def _x():
    # big enough to be tried in place (smaller inputs are always copied)
    x = np.random.default_rng(0).standard_normal((32, 64)).astype(np.float32)
    assert x.nbytes > COPY_BELOW
    return x


@pytest.mark.parametrize("offset", [0, 4, 16, 32, 48])
def test_misaligned_inputs_are_copied_and_give_the_oracles_numbers(case, offset):
    model, m = case
    x = _at_offset(_x(), offset)
    for _ in range(3):  # the staging buffer is reused across calls
        np.testing.assert_array_equal(m(x), _oracle(model, x))
    x[0, 0] = 123.0  # a changed input gives changed numbers (nothing stale in the staging buffer)
    np.testing.assert_array_equal(m(x), _oracle(model, x))


@pytest.mark.parametrize("layout", ["strided", "fortran", "read-only", "big-endian", "broadcast"])
def test_layouts_tvm_cannot_read_in_place(case, layout):
    model, m = case
    base = _x()
    if layout == "strided":
        x = np.repeat(base, 2, axis=1)[:, ::2]
    elif layout == "fortran":
        x = np.asfortranarray(base)
    elif layout == "read-only":
        x = base.copy()
        x.flags.writeable = False
    elif layout == "big-endian":
        x = base.astype(">f4")
    else:
        x = np.broadcast_to(base[:1], base.shape)
    before = np.array(x)
    np.testing.assert_array_equal(m(x), _oracle(model, np.array(x)))
    np.testing.assert_array_equal(x, before)  # the caller's input is left as it was


def test_a_staging_buffer_follows_the_input_shape():
    # a symbolic dim: each call's shape gets its own (re)allocated staging buffer
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 16])
    model = helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "sym", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 21)])
    m = graphopt.optimize(model, opt_level=None)
    for n in (3, 5, 3, 1):
        a = _at_offset(np.random.default_rng(n).standard_normal((n, 16)).astype(np.float32), 16)
        np.testing.assert_array_equal(m(a), _oracle(model, a))


def test_zero_d_and_zero_size_inputs():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [])
    model = helper.make_model(helper.make_graph([helper.make_node("Neg", ["x"], ["y"])], "d0", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 21)])
    m = graphopt.optimize(model, opt_level=None)
    for a in (np.array(2.5, np.float32), np.array(-1.0, ">f4"), np.float32(3.0)):
        got = m(a)
        assert got.shape == () and got.dtype == np.float32
        np.testing.assert_array_equal(got, _oracle(model, np.asarray(a)))
    for shape in ((0, 4), (3, 0, 4)):  # numpy gives these zero strides, which TVM refuses in place
        me = graphopt.optimize(_model("Identity", shape=shape), opt_level=None)
        for _ in range(2):
            assert me(np.zeros(shape, np.float32)).shape == shape


def test_torch_tensors_misaligned_and_strided():
    torch = pytest.importorskip("torch")
    model, m = _model("Add"), None
    m = graphopt.optimize(model, opt_level=None)
    big = torch.randn(32 * 64 + 3)
    for t in (big[3:].view(32, 64), torch.randn(64, 32).t(), torch.randn(32, 64)):
        np.testing.assert_array_equal(m(t), _oracle(model, t.numpy()))
        # the DLPack path (graphopt.optimize on an nn.Module calls it): a misaligned view
        # is copied there too
        if t.is_contiguous():
            (out,) = m.run_dlpack([t], ["float32"])
            np.testing.assert_array_equal(torch.from_dlpack(out).numpy(), _oracle(model, t.numpy()))
