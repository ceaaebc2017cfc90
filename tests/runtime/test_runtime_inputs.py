"""Run-time inputs of a compiled model: every wrong one is an InputError naming the input;
unusual but valid layouts (big-endian, non-contiguous, 0-d) give the oracle's numbers.
And `graphopt run`'s inputs and -o."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

import graphopt
from graphopt.api import InputError
from graphopt.testing import run_reference


def _model():
    nodes = [helper.make_node("Mul", ["x", "s"], ["y"], name="scale"),
             helper.make_node("Add", ["t", "t"], ["z"], name="double")]
    g = helper.make_graph(nodes, "inputs", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4]),
                                            helper.make_tensor_value_info("s", TensorProto.FLOAT, []),
                                            helper.make_tensor_value_info("t", TensorProto.FLOAT, ["N"])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4]),
                           helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N"])])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)])


@pytest.fixture(scope="module")
def compiled():
    return graphopt.optimize(_model(), opt_level=None)


def _x(n=3):
    return np.random.default_rng(n).standard_normal((n, 4)).astype(np.float32)


def _expect(x, s, t):
    g = graphopt.import_onnx(_model())
    return run_reference(g, {"x": np.ascontiguousarray(x, dtype=np.float32), "s": np.asarray(s, np.float32),
                             "t": np.ascontiguousarray(t, dtype=np.float32)})


@pytest.mark.parametrize("layout", ["big-endian", "big-endian-0d", "column-major", "strided", "reversed",
                                    "scalar-python"])
def test_valid_unusual_inputs_give_the_oracles_numbers(compiled, layout):
    x, s, t = _x(), np.array(2.5, np.float32), np.arange(3, dtype=np.float32)
    if layout == "big-endian":
        x, t = x.astype(">f4"), t.astype(">f4")
    elif layout == "big-endian-0d":
        s = s.astype(">f4")
    elif layout == "column-major":
        x = np.asfortranarray(x)
    elif layout == "strided":
        x = np.repeat(x, 2, axis=1)[:, ::2]
        t = np.arange(6, dtype=np.float32)[::2]
    elif layout == "reversed":
        x, t = x[::-1], t[::-1]
    got = compiled(x, np.float32(s) if layout == "scalar-python" else s, t)
    exp = _expect(np.array(x, np.float32), s, np.array(t, np.float32))
    for e, g in zip(exp, got):
        assert g.dtype == np.float32 and g.dtype.isnative
        np.testing.assert_array_equal(g, e)


@pytest.mark.parametrize("args,kwargs,words", [
    ((_x(), np.array(2, np.float32), np.zeros(3, np.float64)), {}, ["'t'", "float32", "float64"]),
    ((_x().astype(">f8"), np.array(2, np.float32), np.zeros(3, np.float32)), {}, ["'x'", "float64"]),
    ((_x(), np.array([2], np.float32), np.zeros(3, np.float32)), {}, ["'s'", "rank 0", "rank 1"]),
    ((_x()[0, 0], np.array(2, np.float32), np.zeros(3, np.float32)), {}, ["'x'", "rank 2", "rank 0"]),
    ((_x(), 2.0, np.zeros(3, np.float32)), {}, ["'s'", "float64"]),  # a Python float is float64
    ((_x(), np.array(2, np.float32), np.zeros(4, np.float32)), {}, ["'t'", "N", "4", "3"]),
    ((np.zeros((3, 5), np.float32), np.array(2, np.float32), np.zeros(3, np.float32)), {}, ["'x'", "[N, 4]"]),
    ((_x().astype(object), np.array(2, np.float32), np.zeros(3, np.float32)), {}, ["'x'", "object"]),
    ((_x(), np.array(2, np.float32), [[1.0], [1.0, 2.0], []]), {}, ["'t'"]),
    ((_x(), np.array(2, np.float32), {"a": 1}), {}, ["'t'", "dict"]),
    ((_x(), np.array(2, np.float32), np.zeros(3, np.float32), np.zeros(3, np.float32)), {}, ["3 input", "4 given"]),
    ((_x(), np.array(2, np.float32)), {}, ["missing", "'t'"]),
    ((_x(),), {"x": _x(), "s": np.array(2, np.float32), "t": np.zeros(3, np.float32)}, ["'x'", "twice"]),
    ((), {"x": _x(), "s": np.array(2, np.float32), "t": np.zeros(3, np.float32), "u": 1}, ["unknown", "'u'"]),
    ((np.array(["a"] * 12).reshape(3, 4), np.array(2, np.float32), np.zeros(3, np.float32)), {}, ["'x'", "str"]),
])
def test_wrong_inputs_are_input_errors_naming_the_input(compiled, args, kwargs, words):
    with pytest.raises(InputError) as ei:
        compiled(*args, **kwargs)
    msg = str(ei.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg, msg


# --------------------------------------------------------------------------- graphopt run
@pytest.fixture(scope="module")
def art(compiled, tmp_path_factory):
    return compiled.save(tmp_path_factory.mktemp("rt") / "art")


def _run(art, tmp_path, arrays, extra=()):
    from graphopt.cli import main

    argv = ["run", str(art)]
    for name, a in arrays.items():
        p = tmp_path / f"in_{name}.npy"
        np.save(p, a, allow_pickle=True)
        argv += ["--input", f"{name}={p}"]
    return main(argv + list(extra))


def test_cli_big_endian_npy_gives_right_numbers(art, tmp_path, capsys):
    x, t = _x(), np.arange(3, dtype=np.float32)
    assert _run(art, tmp_path, {"x": x.astype(">f4"), "s": np.array(2.5, ">f4"), "t": t.astype(">f4")},
                ["-o", str(tmp_path / "out")]) == 0
    exp = _expect(x, np.float32(2.5), t)
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "y.npy"), exp[0])
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "z.npy"), exp[1])


@pytest.mark.parametrize("bad", ["object", "npz", "garbage", "wrong-dtype"])
def test_cli_bad_npy_inputs_give_one_line(art, tmp_path, capsys, bad):
    ok = {"x": _x(), "s": np.array(2.5, np.float32), "t": np.zeros(3, np.float32)}
    if bad == "object":
        ok["x"] = _x().astype(object)
    elif bad == "wrong-dtype":
        ok["t"] = np.zeros(3, np.int32)
    rc = _run(art, tmp_path, ok)
    if bad in ("npz", "garbage"):
        p = tmp_path / "in_x.npy"
        if bad == "npz":
            np.savez(open(p, "wb"), a=_x())
        else:
            p.write_bytes(b"\x93NUMPY garbage")
        capsys.readouterr()
        rc = _run(art, tmp_path, {}, ["--input", f"x={p}", "--input", f"s={tmp_path / 'in_s.npy'}",
                                      "--input", f"t={tmp_path / 'in_t.npy'}"])
    assert rc == 1
    err = capsys.readouterr().err
    assert err.startswith("graphopt: error: ") and len(err.strip().splitlines()) == 1, err


def test_cli_output_dir_that_is_a_file_is_refused(art, tmp_path, capsys):
    f = tmp_path / "taken"
    f.write_text("the user's file")
    ok = {"x": _x(), "s": np.array(2.5, np.float32), "t": np.zeros(3, np.float32)}
    assert _run(art, tmp_path, ok, ["-o", str(f)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("graphopt: error: ") and "taken" in err and "not a folder" in err
    assert len(err.strip().splitlines()) == 1 and f.read_text() == "the user's file"


def test_cli_output_dir_replaces_earlier_outputs(art, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    np.save(out / "y.npy", np.zeros(1))
    (out / "notes.txt").write_text("kept")
    ok = {"x": _x(), "s": np.array(2.5, np.float32), "t": np.zeros(3, np.float32)}
    assert _run(art, tmp_path, ok, ["-o", str(out)]) == 0
    np.testing.assert_array_equal(np.load(out / "y.npy"), _expect(ok["x"], ok["s"], ok["t"])[0])
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "y.npy", "z.npy"]
