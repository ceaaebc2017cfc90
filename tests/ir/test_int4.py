"""int4/uint4 in the IR: held one element an int8/uint8 byte, in range, printed and parsed
back as numbers; ONNX packs them two a byte (the first element in the low nibble), and a
round trip through ONNX keeps every value."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from graphopt.frontend.onnx_export import tensor_to_proto
from graphopt.frontend.onnx_import import ModelLoadError, _check_one_tensor, tensor_from_proto
from graphopt.ir import DType, Graph, TensorData, TensorType
from graphopt.ir.parser import ParseError, parse_ir
from graphopt.ir.printer import print_ir


def _values(dtype: DType, shape, seed: int = 0) -> np.ndarray:
    lo, hi = dtype.int_range
    return np.random.default_rng(seed).integers(lo, hi + 1, shape).astype(dtype.numpy)


@pytest.mark.parametrize("dtype", [DType.INT4, DType.UINT4])
def test_range_and_storage(dtype):
    lo, hi = dtype.int_range
    assert (lo, hi) == ((-8, 7) if dtype is DType.INT4 else (0, 15))
    assert TensorData(np.array([lo, hi], dtype.numpy), dtype).numpy().tolist() == [lo, hi]
    with pytest.raises(ValueError, match=f"outside {lo}..{hi}"):
        TensorData(np.array([lo, hi + 1], dtype.numpy), dtype)
    # numpy's int8 is int8, never int4: from_numpy does not guess
    assert TensorData.from_numpy(np.zeros(2, dtype.numpy)).dtype is not dtype


@pytest.mark.parametrize("dtype", [DType.INT4, DType.UINT4])
@pytest.mark.parametrize("shape", [(7,), (3, 5), (64, 33)])  # small (dense) and large (base64 / elided)
def test_text_form_round_trip(dtype, shape):
    g = Graph("g", {"": 21})
    q = g.add_constant("q", TensorData(_values(dtype, shape), dtype))
    s = g.add_constant("s", TensorData.from_numpy(np.float32(0.5)))
    g.outputs = [g.add_node("DequantizeLinear", [q, s], [TensorType(DType.FLOAT32, shape)], {}).outputs[0]]
    for full in (False, True):
        text = print_ir(g, full_constants=full)
        assert f"{dtype.short}[" in text
        back = parse_ir(text)
        assert print_ir(back, full_constants=full) == text
        if full:
            np.testing.assert_array_equal(back.lookup("q").const.numpy(), g.lookup("q").const.numpy())


def test_parser_refuses_an_int4_out_of_range():
    text = print_ir(_dq_graph(np.array([1, 2], np.int8)))
    assert "dense<[1, 2]>" in text
    with pytest.raises(ParseError, match=r"9 is out of range for i4 \(-8..7\)"):
        parse_ir(text.replace("dense<[1, 2]>", "dense<[1, 9]>"))


def _dq_graph(q: np.ndarray) -> Graph:
    g = Graph("g", {"": 21})
    qv = g.add_constant("q", TensorData(q, DType.INT4))
    s = g.add_constant("s", TensorData.from_numpy(np.float32(0.5)))
    g.outputs = [g.add_node("DequantizeLinear", [qv, s], [TensorType(DType.FLOAT32, q.shape)], {}).outputs[0]]
    return g


@pytest.mark.parametrize("dtype", [DType.INT4, DType.UINT4])
@pytest.mark.parametrize("shape", [(), (5,), (4, 7), (8, 32)])
def test_onnx_packs_two_a_byte_and_comes_back(dtype, shape):
    a = _values(dtype, shape, seed=len(shape))
    t = tensor_to_proto(TensorData(a, dtype), "w")
    assert t.data_type == dtype.onnx and len(t.raw_data) == (a.size + 1) // 2
    _check_one_tensor(t, "test")
    np.testing.assert_array_equal(numpy_helper.to_array(t).astype(dtype.numpy), a)  # onnx's own reading
    back = tensor_from_proto(t)
    assert back.dtype is dtype
    np.testing.assert_array_equal(back.numpy(), a)


def test_a_packed_tensor_of_the_wrong_size_is_refused_by_name():
    t = tensor_to_proto(TensorData(np.zeros((4, 7), np.int8), DType.INT4), "w4")
    t.raw_data = t.raw_data[:-1]
    with pytest.raises(ModelLoadError, match=r"tensor 'w4'.*28 elements \(14 bytes\).*13 bytes"):
        _check_one_tensor(t, "m.onnx")
    typed = onnx.helper.make_tensor("w5", onnx.TensorProto.UINT4, [5], [1, 2, 3, 4, 5])
    del typed.int32_data[-1]
    with pytest.raises(ModelLoadError, match=r"tensor 'w5'.*5 4-bit elements \(3 packed words\).*holds 2"):
        _check_one_tensor(typed, "m.onnx")
