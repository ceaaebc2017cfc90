"""--shape / --dim on `graphopt opt` and `graphopt compile`, and shapes= / dims= /
example_inputs= on `graphopt.optimize`: the model is specialized before the -O pipeline,
what the sizes make constant folds, the compiled model takes inputs of the bound shapes
and gives the oracle's numbers; a binding that contradicts the model is a one-line error
naming the input and dim, and writes nothing."""

from __future__ import annotations

import json

import numpy as np
import pytest

import graphopt
from graphopt.cli import main
from graphopt.errors import ShapeBindingError
from graphopt.io import save_graph
from graphopt.ir.parser import parse_ir
from graphopt.testing import assert_close, random_inputs, run_reference

SRC = '''graph main(%x: f32[batch, seq, 4], %m: f32[seq]) opset("": 21) {
  const %one: i64[] = dense<[1]>
  const %zero: i64[] = dense<[0]>
  const %step: i64[] = dense<[1]>
  const %rest: i64[1] = dense<[-1]>
  %s: i64[3] = Shape(%x) @shape
  %n: i64[] = Gather(%s, %one) {axis=0} @gather
  %pos: i64[range_d0] = Range(%zero, %n, %step) @range
  %posf: f32[range_d0] = Cast(%pos) {to=1} @cast
  %mp: f32[seq] = Add(%m, %posf) @add
  %n1: i64[1] = Unsqueeze(%n, %zero) @unsqueeze
  %t: i64[2] = Concat(%n1, %rest) {axis=0} @concat
  %r: f32[reshape_d0, reshape_d1] = Reshape(%x, %t) @reshape
  %y: f32[reshape_d0, reshape_d1] = Relu(%r) @relu
  return %y, %mp
}'''
DIMS = {"batch": 2, "seq": 5}


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "m.onnx"
    save_graph(parse_ir(SRC), path)
    return path


def _static_and_folded(g) -> None:
    assert all(v.type.is_static for v in g.inputs)
    assert all(o.type.is_static for n in g.walk() for o in n.outputs if o is not None)
    assert not {"Shape", "Range", "Gather", "Concat"} & {n.op_type for n in g.walk()}


@pytest.mark.parametrize("flags", [["--dim", "batch=2", "--dim", "seq=5"], ["--shape", "x=2x5x4"],
                                   ["--shape", "m=5", "--dim", "batch=2"]])
def test_opt_binds_before_the_pipeline_and_folds(model, tmp_path, flags):
    out = tmp_path / "o.ir"
    assert main(["opt", str(model), *flags, "-O1", "--verify-each", "--check-numerics", "-o", str(out)]) == 0
    g = parse_ir(out.read_text())
    _static_and_folded(g)
    src = graphopt.import_onnx(model)
    inputs = random_inputs(src, dims=DIMS)
    assert_close(run_reference(src, inputs), run_reference(g, inputs))


@pytest.mark.parametrize("flags,words", [
    (["--shape", "y=2x5x4"], ["no such input", "'y'", "inputs: x, m"]),
    (["--shape", "x=2x5"], ["'x'", "rank 2"]),
    (["--shape", "x=2x5x3"], ["'x'", "dim 2 is 4"]),
    (["--shape", "x=2x0x4"], ["'x' dim 1", "not positive"]),
    (["--dim", "seq=0"], ["'seq'", "not positive"]),
    (["--dim", "sequence=5"], ["'sequence'", "dims: batch, seq"]),
    (["--shape", "x=2x5x4", "--dim", "seq=6"], ["'seq'", "gives 6", "input 'x' dim 1 gives 5"]),
    (["--shape", "x=2x5x4", "--shape", "m=6"], ["'seq'", "input 'm' dim 0 gives 6"]),
    (["--dim", "seq"], ["NAME=VALUE"]),
    (["--dim", "seq=five"], ["--dim seq", "not an integer"]),
    (["--shape", "x=2by5"], ["--shape x", "bad shape"]),
])
def test_opt_bad_bindings_are_one_line_errors_and_write_nothing(model, tmp_path, capsys, flags, words):
    out = tmp_path / "o.onnx"
    assert main(["opt", str(model), *flags, "-O1", "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("graphopt: error: ") and err.count("\n") == 1, err
    assert all(w in err for w in words), err
    assert not out.exists()


def test_opt_contradiction_found_downstream_names_the_node(tmp_path, capsys):
    path = tmp_path / "fixed.ir"
    path.write_text('''graph main(%x: f32[b, 4], %y: f32[2, 4]) opset("": 21) {
  %z: f32[2, 4] = Add(%x, %y) @add
  return %z
}
''')
    assert main(["opt", str(path), "--dim", "b=3", "-o", str(tmp_path / "o.ir")]) == 1
    err = capsys.readouterr().err
    assert "specialize-shapes" in err and "b=3" in err and "'add'" in err and err.count("\n") == 1, err


def test_compile_cli_binds_shapes_and_matches_the_oracle(model, tmp_path, capsys):
    art = tmp_path / "art"
    assert main(["compile", str(model), "--dim", "batch=2", "--shape", "m=5", "-O", "O1", "-o", str(art)]) == 0
    manifest = json.loads((art / "manifest.json").read_text())
    assert [i["shape"] for i in manifest["inputs"]] == [[2, 5, 4], [5]]
    src = graphopt.import_onnx(model)
    inputs = random_inputs(src, dims=DIMS)
    assert_close(run_reference(src, inputs), graphopt.load(art).run(**inputs))


def test_compile_cli_bad_binding_is_one_line_and_leaves_no_artifact(model, tmp_path, capsys):
    art = tmp_path / "art"
    assert main(["compile", str(model), "--dim", "sequence=5", "-o", str(art)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("graphopt: error: ") and "'sequence'" in err and "dims: batch, seq" in err, err
    assert not art.exists()


def test_optimize_binds_shapes_dims_and_example_inputs(model):
    src = graphopt.import_onnx(model)
    inputs = random_inputs(src, dims=DIMS)
    expected = run_reference(src, inputs)
    for kw in ({"dims": DIMS}, {"shapes": {"x": (2, 5, 4)}}, {"example_inputs": inputs},
               {"example_inputs": [inputs["x"], inputs["m"]]}, {"example_inputs": [inputs["x"]]}):
        compiled = graphopt.optimize(str(model), opt_level="O1", **kw)
        assert [i["shape"] for i in compiled.manifest["inputs"]] == [[2, 5, 4], [5]], kw
        assert_close(expected, compiled.run(**inputs))


def test_optimize_on_a_graph_leaves_the_callers_graph_symbolic():
    g = parse_ir(SRC)
    inputs = random_inputs(g, dims=DIMS)
    compiled = graphopt.optimize(g, dims=DIMS, opt_level="O1")
    assert_close(run_reference(g, inputs), compiled.run(**inputs))
    assert str(g.inputs[0].type) == "f32[batch, seq, 4]"


@pytest.mark.parametrize("kw,words", [
    ({"shapes": {"x": (2, 5)}}, ["'x'", "rank 2"]),
    ({"dims": {"seq": -2}}, ["'seq'", "not positive"]),
    ({"dims": {"sq": 5}}, ["'sq'", "dims: batch, seq"]),
    ({"example_inputs": [np.zeros([2, 5, 4], np.float32)] * 3}, ["3 example inputs", "2 inputs"]),
    ({"example_inputs": {"x": np.zeros([2, 5, 4], np.float32)}, "shapes": {"x": (2, 6, 4)}}, ["'x'", "[2, 6, 4]"]),
    ({"example_inputs": {"x": np.zeros([2, 5, 4], np.float32), "m": np.zeros([6], np.float32)}},
     ["'seq'", "input 'm' dim 0 gives 6"]),
])
def test_optimize_bad_bindings_raise_naming_the_input_and_dim(model, kw, words):
    with pytest.raises(ShapeBindingError) as e:
        graphopt.optimize(str(model), opt_level="O1", **kw)
    assert all(w in str(e.value) for w in words) and str(model) in str(e.value), str(e.value)


def test_compile_cli_contradiction_found_downstream_names_the_file_and_node(tmp_path, capsys):
    path = tmp_path / "fixed.onnx"
    save_graph(parse_ir('''graph main(%x: f32[b, 4], %y: f32[2, 4]) opset("": 21) {
  %z: f32[2, 4] = Add(%x, %y) @add
  return %z
}'''), path)
    art = tmp_path / "art"
    assert main(["compile", str(path), "--dim", "b=3", "-o", str(art)]) == 1
    err = capsys.readouterr().err
    assert str(path) in err and "b=3" in err and "'add'" in err and err.count("\n") == 1, err
    assert not art.exists()


def test_a_specialized_model_refuses_other_shapes_naming_the_input():
    from graphopt.runtime import InputError

    compiled = graphopt.optimize(parse_ir(SRC), dims=DIMS, opt_level="O1")
    other = random_inputs(parse_ir(SRC), dims={"batch": 2, "seq": 6})
    with pytest.raises(InputError, match="input 'x'.*dim 1"):
        compiled.run(**other)


def _applications(out: str) -> int:
    import re

    m = re.search(r"\((\d+) rewrite applications", out)
    assert m, out
    return int(m.group(1))


def test_bisect_searches_the_specialized_model(model, capsys):
    # Bound, -O1 folds the Shape/Gather/Range/Concat chain: more applications to search,
    # and every comparison runs at the bound shapes (the oracle of the specialized model).
    assert main(["bisect", str(model), "-O1"]) == 0
    free = _applications(capsys.readouterr().out)
    assert main(["bisect", str(model), "-O1", "--dim", "batch=2", "--dim", "seq=5"]) == 0
    bound = _applications(capsys.readouterr().out)
    assert bound > free


def test_bisect_refuses_a_binding_the_model_contradicts(model, capsys):
    assert main(["bisect", str(model), "-O1", "--shape", "x=2x5x3"]) == 1
    err = capsys.readouterr().err
    assert "input 'x': dim 2 is 4 in the model" in err, err
