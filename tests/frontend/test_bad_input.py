"""Bad input gets a one-line error naming what is wrong, and the CLI exits non-zero
without a traceback (unless --debug)."""

import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

import graphopt
from graphopt.errors import ModelLoadError, OutputPathError, UnsupportedOpError
from graphopt.io import save_graph

EXAMPLE = Path(__file__).parents[2] / "examples" / "tiny_cnn.onnx"


def _model(nodes, inputs, outputs, opset=21, inits=()):
    g = helper.make_graph(nodes, "m", inputs, outputs, initializer=list(inits))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def vi(name, shape=(2,), t=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, t, list(shape))


@pytest.fixture
def bad_files(tmp_path):
    files = {}
    files["empty"] = tmp_path / "empty.onnx"
    files["empty"].write_bytes(b"")
    data = EXAMPLE.read_bytes()
    files["truncated"] = tmp_path / "truncated.onnx"
    files["truncated"].write_bytes(data[: len(data) // 3])
    files["text"] = tmp_path / "notes.onnx"
    files["text"].write_text("this is not a model\n" * 20)
    return files


@pytest.mark.parametrize("kind, message", [
    ("empty", "the file is empty"),
    ("truncated", "not an ONNX model"),
    ("text", "not an ONNX model"),
])
def test_unreadable_files(bad_files, kind, message):
    path = bad_files[kind]
    with pytest.raises(ModelLoadError) as e:
        graphopt.import_onnx(path)
    assert str(path) in str(e.value) and message in str(e.value)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ModelLoadError, match="no such file"):
        graphopt.import_onnx(tmp_path / "nope.onnx")
    with pytest.raises(ModelLoadError, match="is a directory"):
        graphopt.import_onnx(tmp_path)


def test_checker_failure_names_the_problem():
    # Relu reads a value nothing defines.
    m = _model([helper.make_node("Relu", ["ghost"], ["y"], name="r")], [vi("x")], [vi("y")])
    with pytest.raises(ModelLoadError, match="fails onnx.checker.*ghost"):
        graphopt.import_onnx(m)


def test_every_unknown_op_is_listed_at_once():
    m = _model([
        helper.make_node("FancyOp", ["x"], ["a"], name="f1", domain="com.example"),
        helper.make_node("FancyOp", ["a"], ["b"], name="f2", domain="com.example"),
        helper.make_node("OtherOp", ["b"], ["y"], name="o1", domain="com.example"),
    ], [vi("x")], [vi("y")])
    m.opset_import.append(helper.make_opsetid("com.example", 1))
    with pytest.raises(UnsupportedOpError) as e:
        graphopt.import_onnx(m)
    msg = str(e.value)
    assert "2 unsupported op type(s)" in msg
    for part in ("com.example.FancyOp", "'f1'", "'f2'", "com.example.OtherOp", "'o1'"):
        assert part in msg
    assert {op for op, _ in e.value.ops} == {"com.example.FancyOp", "com.example.OtherOp"}


def test_opset_the_converter_cannot_handle():
    # Attention is new in opset 23: there is no opset-21 form to convert it to.
    q = vi("q", (1, 2, 4, 8))
    m = _model([helper.make_node("Attention", ["q", "q", "q"], ["y"], name="attn")], [q], [vi("y", (1, 2, 4, 8))],
               opset=23)
    with pytest.raises(ModelLoadError, match="cannot convert opset 23 to opset 21.*Attention"):
        graphopt.import_onnx(m)


def test_output_path_that_cannot_be_written(tmp_path):
    g = graphopt.import_onnx(EXAMPLE)
    with pytest.raises(OutputPathError, match="does not exist"):
        save_graph(g, tmp_path / "no" / "such" / "dir" / "out.onnx")
    (tmp_path / "taken.onnx").mkdir()
    with pytest.raises(OutputPathError, match="is a directory"):
        save_graph(g, tmp_path / "taken.onnx")
    assert [p.name for p in tmp_path.iterdir()] == ["taken.onnx"]


def test_no_partial_file_when_export_fails(tmp_path):
    text = EXAMPLE.parent / "tiny_cnn.onnx"
    g = graphopt.import_onnx(text)
    elided = graphopt.parse_ir(graphopt.print_ir(g))  # big constants elided: cannot export
    out = tmp_path / "out.onnx"
    with pytest.raises(graphopt.ExportError, match="elided"):
        save_graph(elided, out)
    assert list(tmp_path.iterdir()) == []


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "graphopt", *args], capture_output=True, text=True, timeout=120)


def test_cli_error_is_one_line_without_traceback(bad_files):
    r = run_cli("show", str(bad_files["truncated"]))
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("graphopt: error:") and str(bad_files["truncated"]) in lines[0]
    assert "Traceback" not in r.stderr
    r = run_cli("--debug", "show", str(bad_files["truncated"]))
    assert r.returncode == 1 and "Traceback" in r.stderr


def test_cli_help_lists_subcommands():
    r = run_cli("--help")
    assert r.returncode == 0 and "show" in r.stdout
