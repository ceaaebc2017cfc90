"""An artifact folder is untrusted input: a manifest that names files outside the folder,
tampered parameters, a library from another compile, a damaged manifest all get one-line
ArtifactErrors (the content hash recomputed, as a tamperer would); saves leave nothing
behind when they fail or when the writer is killed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphopt
from graphopt.codegen import artifact
from graphopt.codegen.artifact import ArtifactError


def _model(n_out: int, name: str):
    rng = np.random.default_rng(n_out)
    w = numpy_helper.from_array(rng.uniform(-0.3, 0.3, (64, n_out)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.uniform(-0.3, 0.3, (n_out,)).astype(np.float32), "b")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"], name="mm"), helper.make_node("Add", ["m", "b"], ["y"], name="add")]
    g = helper.make_graph(nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 64])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", n_out])], [w, b])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)])


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Two artifacts of different models (one to tamper with, one to take files from)."""
    root = tmp_path_factory.mktemp("artifacts")
    graphopt.optimize(_model(50, "a"), opt_level=None).save(root / "a")
    graphopt.optimize(_model(70, "b"), opt_level=None).save(root / "b")
    return root


@pytest.fixture
def art(saved, tmp_path):
    """A fresh copy of artifact a (a fresh path: a library loaded once stays mapped)."""
    shutil.copytree(saved / "a", tmp_path / "art")
    return tmp_path / "art"


def _manifest(folder):
    return json.loads((folder / artifact.MANIFEST).read_text())


def _rewrite(folder, manifest, rehash=True):
    if rehash:
        manifest["content_hash"] = artifact.content_hash(folder, manifest)
    (folder / artifact.MANIFEST).write_text(json.dumps(manifest))


def _refused(folder, *words, cls=ArtifactError):
    with pytest.raises(cls) as ei:
        graphopt.load(folder)
    msg = str(ei.value)
    assert "\n" not in msg, msg
    for w in words:
        assert w in msg, msg
    return msg


def _cli_refuses(folder, capsys):
    from graphopt.cli import main

    x = folder.parent / "x.npy"
    np.save(x, np.ones((1, 64), np.float32))
    assert main(["run", str(folder), "--input", f"x={x}"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("graphopt: error: ") and len(err.strip().splitlines()) == 1, err


def test_intact_artifact_loads_and_matches(art):
    x = np.random.default_rng(0).standard_normal((3, 64)).astype(np.float32)
    m = graphopt.load(art)
    g = graphopt.import_onnx(_model(50, "a"))
    from graphopt.testing import run_reference

    np.testing.assert_allclose(m(x), run_reference(g, {"x": x})[0], rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- reads outside the folder
@pytest.fixture
def no_library_loads(monkeypatch):
    """Fail the test if any library gets loaded: the refusal must come first."""
    import tvm

    def boom(path, *a, **k):
        raise AssertionError(f"loaded {path}")

    monkeypatch.setattr(tvm.runtime, "load_module", boom)


@pytest.mark.parametrize("how", ["dotdot", "absolute", "symlink-out", "params-symlink-out", "manifest-symlink-out",
                                 "extra-file-dotdot"])
def test_files_outside_the_folder_are_refused(art, saved, tmp_path, how, capsys, no_library_loads):
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(saved / "b", elsewhere)
    man = _manifest(art)
    if how == "dotdot":  # a staged manifest naming its library by a relative path out of the folder
        man["files"] = ["../elsewhere/model.so", "params.npz"]
        entry = "../elsewhere/model.so"
    elif how == "absolute":
        man["files"] = [str(elsewhere / "model.so"), "params.npz"]
        entry = str(elsewhere / "model.so")
    elif how == "symlink-out":
        (art / "model.so").unlink()
        os.symlink(elsewhere / "model.so", art / "model.so")
        entry = "symlink"
    elif how == "params-symlink-out":
        (art / "params.npz").unlink()
        os.symlink(os.path.relpath(elsewhere / "params.npz", art), art / "params.npz")
        entry = "symlink"
    elif how == "manifest-symlink-out":
        _rewrite(elsewhere, _manifest(elsewhere))
        (art / "manifest.json").unlink()
        os.symlink(elsewhere / "manifest.json", art / "manifest.json")
        _refused(art, "manifest.json", "symlink")
        return
    else:
        man["libraries"]["../elsewhere/model.so"] = "00"
        entry = "../elsewhere/model.so"
    try:
        _rewrite(art, man)
    except OSError:  # the hash cannot even be computed: write it as is
        _rewrite(art, man, rehash=False)
    _refused(art, str(art / "manifest.json"), entry)
    _cli_refuses(art, capsys)


def test_staged_artifact_refuses_stage_files_outside(saved, tmp_path, monkeypatch, no_library_loads):
    """A staged manifest (``--fallback ort``): a stage's library, parameters or ONNX region
    outside the folder, or not among the hashed files, is refused."""
    folder = tmp_path / "st"
    shutil.copytree(saved / "a", folder)
    man = _manifest(folder)
    (folder / "region1.onnx").write_bytes(b"\x00")
    man.update(files=["params.npz", "model.so", "region1.onnx"], stages=[
        {"kind": "tvm", "lib": "model.so", "params": "params.npz", "inputs": ["x"], "outputs": ["y"], "nodes": []},
        {"kind": "ort", "model": "region1.onnx", "inputs": ["y"], "outputs": ["z"], "nodes": []}])
    for key, bad in [("lib", "../b/model.so"), ("params", "/etc/passwd"), ("model", "../../x.onnx"),
                     ("model", "elsewhere.onnx")]:
        m = json.loads(json.dumps(man))
        m["stages"][1 if key == "model" else 0][key] = bad
        _rewrite(folder, m, rehash=False)
        _refused(folder, "manifest.json", "stages[", bad)


# --------------------------------------------------------------------------- tampered files
def _write_params(folder, arrays):
    with open(folder / "params.npz", "wb") as f:
        np.savez(f, **arrays)


def _params(folder):
    with np.load(folder / "params.npz") as z:
        return {k: z[k] for k in z.files}


@pytest.mark.parametrize("how", ["float64", "missing-key", "extra-key", "wrong-shape", "big-endian", "truncated",
                                 "garbage", "pickled-object"])
def test_tampered_params_give_one_line(art, how, capsys):
    p = _params(art)
    if how == "float64":
        _write_params(art, {k: v.astype(np.float64) for k, v in p.items()})
    elif how == "missing-key":
        _write_params(art, {k: v for k, v in list(p.items())[1:]})
    elif how == "extra-key":
        _write_params(art, dict(p, p99=np.zeros(3, np.float32)))
    elif how == "wrong-shape":
        _write_params(art, {k: v[:1] for k, v in p.items()})
    elif how == "big-endian":
        _write_params(art, {k: v.astype(v.dtype.newbyteorder(">")) for k, v in p.items()})
    elif how == "truncated":
        data = (art / "params.npz").read_bytes()
        (art / "params.npz").write_bytes(data[: len(data) // 2])
    elif how == "garbage":
        (art / "params.npz").write_bytes(os.urandom(500))
    else:
        _write_params(art, {k: np.array([None], dtype=object) for k in p})
    _rewrite(art, _manifest(art))
    _refused(art, "params.npz")
    _cli_refuses(art, capsys)


def test_library_from_another_compile_is_refused(art, saved, capsys):
    shutil.copy(saved / "b" / "model.so", art / "model.so")
    _rewrite(art, _manifest(art))
    _refused(art, "model.so", "not the library")
    _cli_refuses(art, capsys)


def test_garbage_library_is_refused(art, capsys):
    (art / "model.so").write_bytes(b"\x7fELF" + os.urandom(2000))
    _rewrite(art, _manifest(art))
    _refused(art, "model.so")
    _cli_refuses(art, capsys)


@pytest.mark.parametrize("cut", [3, 2, 1.01])
def test_truncated_library_is_refused_without_killing_the_process(art, cut):
    """The dynamic loader maps a truncated library past its end, and the first touch kills
    the process (SIGBUS): load must refuse it first. Run in a subprocess, so a regression
    shows as a dead child rather than a dead test run."""
    data = (art / "model.so").read_bytes()
    (art / "model.so").write_bytes(data[: int(len(data) / cut)])
    _rewrite(art, _manifest(art))
    code = ("import sys, graphopt\n"
            "try:\n    graphopt.load(sys.argv[1])\n"
            "except graphopt.GraphoptError as e:\n    print('REFUSED', e)\n")
    r = subprocess.run([sys.executable, "-c", code, str(art)], capture_output=True, text=True)
    assert r.returncode == 0, f"killed: {r.returncode} {r.stderr[-1500:]}"
    assert "REFUSED" in r.stdout and "model.so" in r.stdout and "truncated" in r.stdout, r.stdout


def test_manifest_edited_to_match_tampered_params_is_refused(art):
    """Parameters and the manifest's specs changed together (hash recomputed): the library's
    id covers the specs, so the library no longer matches."""
    _write_params(art, {k: v.astype(np.float64) for k, v in _params(art).items()})
    man = _manifest(art)
    man["param_specs"]["params.npz"] = [["<f8", s] for _, s in man["param_specs"]["params.npz"]]
    _rewrite(art, man)
    _refused(art, "model.so", "not the library")


def test_manifest_edited_inputs_are_refused(art):
    man = _manifest(art)
    man["inputs"][0]["shape"] = ["N", 32]
    _rewrite(art, man)
    _refused(art, "model.so", "not the library")


@pytest.mark.parametrize("edit,words", [
    (lambda m: m.update(inputs="x"), ["inputs", "list"]),
    (lambda m: m.pop("outputs"), ["outputs"]),
    (lambda m: m.pop("param_specs"), ["param_specs"]),
    (lambda m: m.update(num_params="1"), ["num_params"]),
    (lambda m: m.update(num_params=True), ["num_params"]),
    (lambda m: m["inputs"].append(7), ["inputs[1]"]),
    (lambda m: m["inputs"][0].update(shape="N"), ["inputs[0]", "shape"]),
    (lambda m: m["inputs"][0].update(shape=[-1, 64]), ["inputs[0]", "shape"]),
    (lambda m: m["inputs"][0].pop("name"), ["inputs[0]"]),
    (lambda m: m.update(versions="0.27"), ["versions"]),
    (lambda m: m.update(format=1), ["format", "recompile"]),
    (lambda m: m.update(stages="tvm"), ["stages"]),
    (lambda m: m.update(stages=[{"kind": "cuda"}], files=[]), ["stages[0]"]),
    (lambda m: m.update(files="model.so"), ["files"]),
    (lambda m: m.update(libraries=[]), ["libraries"]),
    (lambda m: m["param_specs"].update({"params.npz": [["<f4", "64"]]}), ["param_specs"]),
    (lambda m: m["param_specs"].update({"params.npz": []}), ["num_params"]),
])
def test_manifest_with_wrong_types_gives_one_line(art, edit, words, capsys):
    man = _manifest(art)
    edit(man)
    _rewrite(art, man, rehash=False)
    _refused(art, "manifest.json", *words)
    _cli_refuses(art, capsys)


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", "null", "\"a string\"", ""])
def test_manifest_not_an_object_gives_one_line(art, text, capsys):
    (art / "manifest.json").write_text(text)
    _refused(art, "manifest.json")
    _cli_refuses(art, capsys)


def test_loaded_artifact_saves_again_and_loads(art, tmp_path):
    again = graphopt.load(art).save(tmp_path / "again")
    x = np.ones((2, 64), np.float32)
    np.testing.assert_array_equal(graphopt.load(again)(x), graphopt.load(art)(x))


# --------------------------------------------------------------------------- leftovers
def _siblings(folder: Path):
    return sorted(p.name for p in folder.parent.iterdir() if p.name != folder.name and p.name.startswith(f".{folder.name}."))


def test_failed_library_write_leaves_nothing(tmp_path, monkeypatch):
    m = graphopt.optimize(_model(50, "a"), opt_level=None)

    def fail(self, path, *a, **k):
        Path(path).write_bytes(b"partial")
        raise RuntimeError("Compilation error:\nld: final link failed: File too large")

    monkeypatch.setattr(type(m._executable), "export_library", fail)
    out = tmp_path / "out"
    with pytest.raises(graphopt.GraphoptError) as ei:
        m.save(out)
    assert "\n" not in str(ei.value) and "model.so" in str(ei.value) and "File too large" in str(ei.value)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_parameter_write_over_the_file_size_limit_leaves_nothing(saved, tmp_path):
    """Python ignores SIGXFSZ: the write fails with EFBIG, and the save removes its own
    temporary folder."""
    code = ("import resource, sys, graphopt\n"
            "m = graphopt.load(sys.argv[1])\n"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))\n"
            "m.save(sys.argv[2])\n")
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-c", code, str(saved / "a"), str(out)], capture_output=True, text=True)
    assert r.returncode == 1 and "OutputPathError" in r.stderr and "File too large" in r.stderr, r.stderr[-2000:]
    assert list(tmp_path.iterdir()) == []


def _limit_file_size():
    import resource

    resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))


def test_compile_killed_by_the_file_size_limit_is_cleaned_by_the_next(tmp_path):
    """LLVM exits the process when it cannot write the library (no Python cleanup runs):
    the next compile to the same output removes what the dead one left."""
    import onnx

    src = tmp_path / "m.onnx"
    onnx.save(_model(50, "a"), str(src))
    out = tmp_path / "o"
    cmd = [sys.executable, "-m", "graphopt", "compile", str(src), "-o", str(out), "-O", "O0"]
    r = subprocess.run(cmd, preexec_fn=_limit_file_size, capture_output=True, text=True)
    assert r.returncode != 0 and not out.exists()
    # The user is told, in one line: LLVM's own when it ended the process, else graphopt's.
    said = [ln for ln in r.stderr.splitlines() if "LLVM ERROR" in ln or ln.startswith("graphopt: error:")]
    assert len(said) == 1, r.stderr[-2000:]
    assert _siblings(out), "the failed compile left nothing: the test shows nothing"
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert _siblings(out) == [] and graphopt.load(out)(np.ones((1, 64), np.float32)).shape == (1, 50)


_KILLED_WRITER = r"""
import os, signal, sys
import graphopt
from graphopt.codegen import artifact
m = graphopt.load(sys.argv[1])
artifact._write_npz = lambda *a: os.kill(os.getpid(), signal.SIGKILL)  # kill -9 in mid-save
m.save(sys.argv[2])
"""


def test_next_save_removes_what_a_killed_writer_left(saved, tmp_path):
    out = tmp_path / "out"
    graphopt.load(saved / "a").save(out)  # an artifact already there, which the killed save was replacing
    r = subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(saved / "b"), str(out)], capture_output=True)
    assert r.returncode == -9, r.stderr.decode()[-2000:]
    assert _siblings(out), "the killed writer left no temporary folder: the test shows nothing"
    assert graphopt.load(out)(np.ones((1, 64), np.float32)).shape == (1, 50)  # the old artifact is intact
    graphopt.load(saved / "b").save(out)
    assert _siblings(out) == []
    assert graphopt.load(out)(np.ones((1, 64), np.float32)).shape == (1, 70)


def test_a_live_writers_temporary_folder_is_left_alone(saved, tmp_path):
    out = tmp_path / "out"
    live = tmp_path / f".out.{os.getpid()}.abcd.tmp"  # this process is alive
    live.mkdir()
    unrelated = tmp_path / ".out.notapid.tmp"
    unrelated.mkdir()
    graphopt.load(saved / "a").save(out)
    assert live.is_dir() and unrelated.is_dir()
