"""Printer and parser: golden files, round trips, constants, errors."""

from pathlib import Path

import numpy as np
import pytest

from graphopt.ir import Attr, DType, Graph, Provenance, TensorData, TensorType
from graphopt.ir.parser import ParseError, parse_ir
from graphopt.ir.printer import print_ir

GOLDEN = Path(__file__).parent / "golden"


def roundtrip(text: str) -> str:
    return print_ir(parse_ir(text))


@pytest.mark.parametrize("path", sorted(GOLDEN.glob("*.ir")), ids=lambda p: p.name)
def test_golden_files_round_trip(path):
    text = path.read_text()
    assert roundtrip(text) == text
    assert roundtrip(roundtrip(text)) == text


def test_every_attribute_kind_and_constant_kind_round_trips():
    g = Graph("kinds", {"": 21, "graphopt": 1})
    x = g.add_input("x", TensorType(DType.FLOAT32, ("batch", 4)))
    consts = {
        "f": np.array([0.1, -2.5e-8, np.inf, -np.inf, np.nan], np.float32),
        "d": np.array([0.1, 1e300], np.float64),
        "h": np.array([0.1, 65504], np.float16),
        "i": np.array([[-1, 2**62]], np.int64),
        "u": np.array([255], np.uint8),
        "b": np.array([True, False]),
        "s": np.array(["a b", 'q"uote', "ünï"], dtype=object),
        "scalar": np.array(3, np.int32),
        "big": np.arange(1000, dtype=np.float32),
    }
    for k, v in consts.items():
        g.add_constant(k, TensorData(v, DType.STRING) if v.dtype == object else TensorData.from_numpy(v))
    g.add_constant("bf", TensorData(np.array([16256, 49024], np.uint16), DType.BFLOAT16))
    attrs = {
        "i": Attr.int(-3), "f": Attr.float(0.1), "s": Attr.string("a\n\"b\""), "is": Attr.ints([]),
        "fs": Attr.floats([1.0, 1e-5]), "ss": Attr.strings(["x", ""]), "es": Attr.strings([]),
        "t": Attr.tensor(TensorData.from_numpy(np.array([1.5, 2], np.float32))),
        "nan": Attr.float(float("nan")),
    }
    n = g.add_node("Custom", [x, None, g.lookup("f")], [TensorType(DType.FLOAT32, None), None], attrs,
                   domain="graphopt", name="weird name/1", provenance=Provenance("rule-x", ("a", "b c")))
    g.outputs = [n.outputs[0]]
    for full in (False, True):
        text = print_ir(g, full_constants=full)
        assert print_ir(parse_ir(text), full_constants=full) == text
    back = parse_ir(print_ir(g, full_constants=True))
    for k, v in consts.items():
        got = back.lookup(k).const.numpy()
        assert got.dtype == v.dtype and got.shape == v.shape
        if v.dtype.kind == "f":
            np.testing.assert_array_equal(got, v)
        else:
            assert (got == v).all()
    m = back.nodes[0]
    assert m.name == "weird name/1" and m.domain == "graphopt" and m.provenance == n.provenance
    assert m.inputs[1] is None and m.outputs[1] is None
    assert dict(m.attrs) .keys() == dict(n.attrs).keys()
    assert m.attrs["s"].value == "a\n\"b\"" and m.attrs["is"].value == () and m.attrs["fs"].value == n.attrs["fs"].value


def test_large_constants_are_elided_with_a_stable_digest():
    g = Graph("g")
    g.add_constant("w", TensorData.from_numpy(np.arange(100, dtype=np.float32)))
    g.outputs = [g.lookup("w")]
    text = print_ir(g)
    assert "elided<" in text and "99.0" not in text
    again = Graph("g")
    again.add_constant("w", TensorData.from_numpy(np.arange(100, dtype=np.float32)))
    again.outputs = [again.lookup("w")]
    assert print_ir(again) == text  # stable digest
    back = parse_ir(text)
    assert back.lookup("w").const.is_elided
    assert print_ir(back) == text


@pytest.mark.parametrize("text, where, what", [
    ("graph g() {\n  return %y\n}\n", "line 2", "used before it is defined"),
    ("graph g(%x: f99[2]) {\n  return %x\n}\n", "line 1", "unknown dtype"),
    ("graph g(%x: f32[2]) {\n  %y: f32[2] = Relu(%x)\n  return %y\n}\n", "line 3", "expected '@'"),
    ("graph g(%x: f32[2]) {\n  const %c: f32[2] = dense<[1.0]>\n  return %x\n}\n", "line 2", "1 elements"),
    ("graph g(%x: f32[2]) {\n  %x: f32[2] = Relu(%x) @r\n  return %x\n}\n", "line 2", "defined twice"),
    ("graph g(%x: f32[2]) {\n  %y: f32[2] = Relu(%x) @r\n", "line 3", "without return"),
    ("graph g(%x: f32[2]) { return %x } trailing", "line 1", "after the graph"),
])
def test_parse_errors_name_the_line(text, where, what):
    with pytest.raises(ParseError) as e:
        parse_ir(text)
    assert where in str(e.value) and what in str(e.value)
