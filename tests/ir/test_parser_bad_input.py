"""A hand-edited or corrupted `.ir` file gives a ParseError with line and column, or a
verifier error naming the node; never an exception from numpy, base64, json or the
verifier's insides (issue 10)."""

import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from graphopt.errors import GraphoptError
from graphopt.ir import DType, Graph, TensorData, TensorType
from graphopt.ir.parser import ParseError, parse_ir
from graphopt.ir.printer import print_ir
from graphopt.ir.verifier import VerificationError, verify
from graphopt.ops import build

GOLDEN = Path(__file__).parent / "golden"

HEAD = 'graph g(%x: f32[2]) opset("": 21) {\n'


def body(*lines, ret="%x"):
    return HEAD + "".join(f"  {ln}\n" for ln in lines) + f"  return {ret}\n}}\n"


@pytest.mark.parametrize("text, what", [
    (body('const %c: f32[2] = base64<"AAAAAAAA=AAA">'), "base64"),              # '=' inside the payload
    (body('const %c: f32[2] = base64<"AAAA*AAA">'), "base64"),                   # not base64 at all
    (body('const %c: f32[2] = base64<"AAAA\u00e9AAA">'), "base64"),             # not even ASCII
    (body('const %c: f32[2] = base64<"AAAAAA==">'), "4 bytes"),                  # 4 bytes for f32 elements: 1, not 2
    (body('const %c: f32[2] = base64<"AAAAAAA=">'), "whole"),                   # 5 bytes: no whole f32
    (body('const %c: str[1] = base64<"AAAA">'), "string"),
    (body('const %c: str[1] = dense<["\\q"]>'), "bad quoted string"),           # bad JSON escape
    (body('%y: f32[2] = Relu(%x) {alpha="\\u12"} @r', ret="%y"), "string"),
    (body('%"\\x": f32[2] = Relu(%x) @r', ret="%x"), "bad quoted name"),
    (body('const %c: i64[2] = dense<[1, 2.5]>'), "integer"),                     # a float where ints belong
    (body('const %c: i64[1] = dense<[nan]>'), "expected a number"),
    (body('const %c: i8[1] = dense<[300]>'), "range"),
    (body('const %c: u8[1] = dense<[-1]>'), "range"),
    (body('const %c: f16[1] = dense<[70000.0]>'), "range"),
    (body('const %c: f32[1] = dense<[1e39]>'), "range"),
    (body('const %c: f32[3] = dense<[1.0, 2.0]>'), "2 elements"),
    (body('const %c: f32[2] = dense<[1.0, 2.0, 3.0]>'), "3 elements"),
    (body('const %c: q7[2] = dense<[1, 2]>'), "unknown dtype"),
    (body('const %x: f32[1] = dense<[1.0]>'), "defined"),                       # duplicate value names
    (body('%y: f32[2] = Relu(%x) @r', '%y: f32[2] = Relu(%x) @r2', ret="%y"), "defined twice"),
    (body('%y: f32[2] = Relu(%x) {axis=99999999999999999999999} @r', ret="%y"), "range"),
    ('graph g(%x: f32[2], %x: f32[2]) {\n  return %x\n}\n', "defined"),
    ('graph g(%x: f32[2]) opset("": abc) {\n  return %x\n}\n', "version"),
    ('graph g(%x: f32[2]) opset("": 21) {\n  %y: f32[2] = Relu(', "end of input"),  # truncated
    ('graph g(%x: f32[2]) opset("": 21) {\n  const %c: f32[2] = dense<[1.0,', "end of input"),
    ('graph g(%x: f32[2]) opset("": 21) {\n  const %c: f32[2] = base64<', "end of input"),
    ('graph g(%x: f32[2]) opset("": 21) {\n  %y: f32[2] = Relu(%x) {a=[', "end of input"),
    ('graph g(%x: f32[2]) opset("": 21) {\n  %y: f32[2] = Relu(%x) {a=ints', "expected an attribute value"),
    ('graph', "end of input"),
])
def test_corrupted_text_is_a_parse_error_with_line_and_column(text, what):
    with pytest.raises(ParseError) as e:
        parse_ir(text)
    msg = str(e.value)
    assert msg.startswith("line ") and ", column " in msg and what in msg, msg
    assert isinstance(e.value, GraphoptError)


@pytest.mark.parametrize("line, what", [
    ('%y: f32[2] = NoSuchOp(%x) @r', "op is not in the registry"),
    ('%y: f32[2] = Transpose(%x) {perm="abc"} @r', "attribute 'perm'"),        # a string where ints belong
    ('%y: f32[2] = Softmax(%x) {axis=[1, 2]} @r', "attribute 'axis'"),
    ('%y: f32[2] = Softmax(%x) {axis=1.5} @r', "attribute 'axis'"),
    ('%y: f32[3] = Relu(%x) @r', "node 'r'"),
])
def test_text_that_parses_but_is_wrong_is_a_verifier_error_naming_the_node(line, what):
    g = parse_ir(body(line, ret="%y"))
    with pytest.raises(VerificationError) as e:
        verify(g)
    assert what in str(e.value) and "node 'r'" in str(e.value)
    assert isinstance(e.value, GraphoptError)


def test_non_utf8_string_constants_round_trip_as_bytes():
    g = Graph("g", {"": 21})
    g.add_constant("s", TensorData(np.array([b"ok", b"\xff\xfe"], dtype=object), DType.STRING))
    g.outputs = [g.lookup("s")]
    back = parse_ir(print_ir(g, full_constants=True))
    assert list(back.lookup("s").const.numpy()) == ["ok", b"\xff\xfe"]
    assert print_ir(back, full_constants=True) == print_ir(g, full_constants=True)


def test_a_lone_surrogate_in_a_name_is_refused():
    with pytest.raises(ParseError, match="line 2"):
        parse_ir(body('%"a\\ud800": f32[2] = Relu(%x) @r', ret="%x"))


# ------------------------------------------------------------------------------ random corruption
def _sample_graph() -> str:
    """A printed graph with each constant form (dense, base64, strings) and attributes of
    several kinds: with the golden files (one has a subgraph), the texts corrupted below."""
    g = Graph("main", {"": 21})
    x = g.add_input("x", TensorType(DType.FLOAT32, ("batch", 4)))
    w = g.add_constant("w", TensorData.from_numpy(np.linspace(-1, 1, 16, dtype=np.float32).reshape(4, 4)))
    k = g.add_constant("k", TensorData.from_numpy(np.array([1, -1], np.int64)))
    g.add_constant("big", TensorData.from_numpy(np.arange(40, dtype=np.int32)))  # prints as base64
    g.add_constant("names", TensorData(np.array(["a", "b\"c"], dtype=object), DType.STRING))
    mm = build(g, "MatMul", [x, w], name="mm")
    sm = build(g, "Softmax", [mm.output], {"axis": -1}, name="sm")
    tr = build(g, "Transpose", [sm.output], {"perm": [1, 0]}, name="tr")
    rs = build(g, "Reshape", [tr.output, k], name="rs")
    lr = build(g, "LeakyRelu", [rs.output], {"alpha": 0.25}, name="lr")
    g.outputs = [lr.output]
    text = print_ir(g, full_constants=True)
    assert "base64<" in text and "dense<" in text
    return text


_ALPHABET = '%@(){}[]<>,:="\\_-.#0123456789eE+ abcxyzf32i64AQ=/\n\t\xff\u00e9'


def _corrupt(text: str, rng: random.Random) -> str:
    chars = list(text)
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(chars))
        op = rng.random()
        if op < 0.4:
            chars[i] = rng.choice(_ALPHABET)
        elif op < 0.7:
            del chars[i]
        elif op < 0.9:
            chars.insert(i, rng.choice(_ALPHABET))
        else:
            del chars[i:]  # truncated
            break
    return "".join(chars)


def test_random_corruption_gives_clean_errors_or_a_graph_that_verifies():
    base = _sample_graph()
    texts = [base] + [(GOLDEN / p).read_text() for p in ("basic.ir", "subgraph.ir")]
    rng = random.Random(10)
    outcomes = {"parse": 0, "verify": 0, "ok": 0}
    for case in range(400):
        src = texts[case % len(texts)]
        text = _corrupt(src, rng)
        try:
            g = parse_ir(text)
        except ParseError as e:
            assert str(e).startswith("line "), (case, text, e)
            outcomes["parse"] += 1
            continue
        try:
            verify(g)
        except VerificationError:
            outcomes["verify"] += 1
            continue
        print_ir(g, full_constants=True)  # a graph that verifies prints too
        outcomes["ok"] += 1
    print(outcomes)
    assert outcomes["parse"] > 100 and outcomes["ok"] > 0, outcomes


def test_cli_reports_a_corrupted_ir_file_as_a_user_error(tmp_path):
    bad = tmp_path / "bad.ir"
    bad.write_text(body('const %c: f32[2] = base64<"AAAA=AAAAAA">'))
    unknown = tmp_path / "unknown.ir"
    unknown.write_text(body('%y: f32[2] = NoSuchOp(%x) @r', ret="%y"))
    for path, what in ((bad, "base64"), (unknown, "NoSuchOp")):
        r = subprocess.run([sys.executable, "-m", "graphopt", "show", str(path)], capture_output=True, text=True)
        assert r.returncode == 1, r.stderr
        assert r.stderr.startswith("graphopt: error:") and what in r.stderr and "internal error" not in r.stderr


def test_a_main_graph_that_returns_nothing_is_a_parse_error():
    with pytest.raises(ParseError, match="line 3.*returns nothing"):
        parse_ir('graph g(%x: f32[2]) opset("": 21) {\n  return\n}\n')


def test_a_default_opset_other_than_the_registrys_is_a_verifier_error():
    g = parse_ir('graph g(%x: f32[2]) opset("": 999) {\n  %y: f32[2] = Relu(%x) @r\n  return %y\n}\n')
    with pytest.raises(VerificationError, match="opset 999"):
        verify(g)
