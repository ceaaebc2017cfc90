"""Light CNNs (random weights) compile and match the oracle; symbolic dims; artifacts;
bad inputs; the CLI."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import graphopt
from graphopt.api import InputError, load, optimize
from graphopt.testing import run_reference
from graphopt.testing.models import LIGHT_MODELS, light_model_inputs, randomized_light_model

# float32 accumulation order differs between TVM's kernels and onnxruntime's; on deep
# models the logits (not softmax outputs) are compared under this model-level tolerance.
from graphopt.testing import MODEL_TOLERANCE


def _check_light(name):
    m = randomized_light_model(name)
    cm = optimize(m)
    x = light_model_inputs(m)
    got = cm.run(**x)
    exp = run_reference(graphopt.import_onnx(m), x)
    for e, g in zip(exp, got):
        np.testing.assert_allclose(g, e, rtol=MODEL_TOLERANCE.rtol, atol=MODEL_TOLERANCE.atol)
    return cm


@pytest.mark.parametrize("name", ["squeezenet", "shufflenet"])
def test_light_model_matches_oracle(name):
    _check_light(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", LIGHT_MODELS)
def test_all_light_models_match_oracle(name):
    _check_light(name)


# ------------------------------------------------------------------ a small model, shared
def _small_model():
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.uniform(-0.3, 0.3, (8, 3, 3, 3)).astype(np.float32), "w")
    fc = numpy_helper.from_array(rng.uniform(-0.3, 0.3, (8, 5)).astype(np.float32), "fc")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("GlobalAveragePool", ["r"], ["p"], name="gap"),
        helper.make_node("Flatten", ["p"], ["f"], name="flat"),
        helper.make_node("MatMul", ["f", "fc"], ["y"], name="fc"),
    ]
    g = helper.make_graph(nodes, "small", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5])], [w, fc])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)])


@pytest.fixture(scope="module")
def small():
    m = _small_model()
    return m, optimize(m)


def test_symbolic_batch_compiles_once_runs_two_sizes(small):
    m, cm = small
    g = graphopt.import_onnx(m)
    for n in (1, 3):
        x = np.random.default_rng(n).uniform(-1, 1, (n, 3, 8, 8)).astype(np.float32)
        y = cm(x)
        assert y.shape == (n, 5)
        np.testing.assert_allclose(y, run_reference(g, {"x": x})[0], rtol=1e-4, atol=1e-5)


def test_keyword_and_positional(small):
    _, cm = small
    x = np.ones((2, 3, 8, 8), np.float32)
    np.testing.assert_array_equal(cm(x), cm(x=x))
    assert isinstance(cm.run(x), list)


@pytest.mark.parametrize("args,kwargs,words", [
    ((np.ones((2, 3, 8, 8), np.float64),), {}, ["'x'", "float32", "float64"]),
    ((np.ones((3, 8, 8), np.float32),), {}, ["'x'", "rank 4", "rank 3"]),
    ((np.ones((2, 3, 9, 8), np.float32),), {}, ["'x'", "[N, 3, 8, 8]", "[2, 3, 9, 8]"]),
    ((), {}, ["missing", "'x'"]),
    ((), {"y": np.ones((1, 3, 8, 8), np.float32)}, ["unknown input", "'y'"]),
    ((np.ones((1, 3, 8, 8), np.float32),) * 2, {}, ["1 input", "2 given"]),
    (("hello",), {}, ["'x'"]),
])
def test_bad_inputs(small, args, kwargs, words):
    _, cm = small
    with pytest.raises(InputError) as ei:
        cm(*args, **kwargs)
    for w in words:
        assert w in str(ei.value)


def test_artifact_round_trip(small, tmp_path):
    m, cm = small
    out = tmp_path / "art"
    cm.save(out)
    # graph.onnx: the compiled graph, which compare_intermediates runs its oracle on
    assert {p.name for p in out.iterdir()} == {"manifest.json", "model.so", "params.npz", "graph.onnx"}
    man = json.loads((out / "manifest.json").read_text())
    assert man["inputs"][0] == {"name": "x", "dtype": "float32", "shape": ["N", 3, 8, 8]}
    assert man["target"] == "cpu" and man["versions"]["tvm"] and man["content_hash"]
    cm2 = load(out)
    x = np.random.default_rng(0).uniform(-1, 1, (2, 3, 8, 8)).astype(np.float32)
    np.testing.assert_array_equal(cm2(x), cm(x))
    with pytest.raises(InputError):
        cm2(x[0])
    # saving again over it replaces it atomically, leaving no temporary folders
    cm.save(out)
    assert [p.name for p in tmp_path.iterdir()] == ["art"]


def test_artifact_tampering_detected(small, tmp_path):
    _, cm = small
    out = tmp_path / "art"
    cm.save(out)
    with open(out / "params.npz", "ab") as f:
        f.write(b"x")
    with pytest.raises(graphopt.GraphoptError, match="hash"):
        load(out)


def test_load_errors(tmp_path):
    with pytest.raises(graphopt.GraphoptError, match="no such folder"):
        load(tmp_path / "nope")
    with pytest.raises(graphopt.GraphoptError, match="not a graphopt artifact"):
        load(tmp_path)


def test_save_refuses_foreign_folder(small, tmp_path):
    _, cm = small
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(graphopt.GraphoptError, match="not a graphopt artifact"):
        cm.save(tmp_path)
    assert (tmp_path / "mine.txt").read_text() == "keep me"


def test_cli_compile_and_run(tmp_path, capsys):
    from graphopt.cli import main
    import onnx

    mpath = tmp_path / "small.onnx"
    onnx.save(_small_model(), str(mpath))
    out = tmp_path / "out"
    assert main(["compile", str(mpath), "-o", str(out)]) == 0
    assert (out / "manifest.json").is_file()
    x = np.random.default_rng(0).uniform(-1, 1, (2, 3, 8, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    assert main(["run", str(out), "--input", f"x={tmp_path / 'x.npy'}", "-o", str(tmp_path / "res")]) == 0
    y = np.load(tmp_path / "res" / "y.npy")
    np.testing.assert_allclose(y, load(out)(x), rtol=0, atol=0)
    np.save(tmp_path / "bad.npy", x.astype(np.float64))
    assert main(["run", str(out), "--input", f"x={tmp_path / 'bad.npy'}"]) == 1
    assert "'x'" in capsys.readouterr().err


def _refused_nodes_model():
    """Two nodes graphopt knowingly refuses to lower (an axes and a K input computed at run
    time, README "Some nodes lower only in their common forms") next to one it lowers."""
    from onnx import TensorProto, helper

    nodes = [helper.make_node("ReduceSum", ["x", "axes"], ["r"], name="sum_runtime_axes"),
             helper.make_node("TopK", ["x", "k"], ["v", "i"], name="topk_runtime_k"),
             helper.make_node("Relu", ["x"], ["ok"], name="relu_fine")]
    sym = ["a", "b", "c"]
    g = helper.make_graph(nodes, "refused", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4]),
                                             helper.make_tensor_value_info("axes", TensorProto.INT64, [1]),
                                             helper.make_tensor_value_info("k", TensorProto.INT64, [1])],
                          [helper.make_tensor_value_info("r", TensorProto.FLOAT, sym),
                           helper.make_tensor_value_info("v", TensorProto.FLOAT, sym),
                           helper.make_tensor_value_info("i", TensorProto.INT64, sym),
                           helper.make_tensor_value_info("ok", TensorProto.FLOAT, [2, 3, 4])])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)])


def test_cli_unsupported_op_lists_nodes(tmp_path, capsys):
    import onnx

    from graphopt.cli import main

    src = tmp_path / "refused.onnx"
    onnx.save(_refused_nodes_model(), str(src))
    assert main(["compile", str(src), "-o", str(tmp_path / "o"), "-O", "O0"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("graphopt: error: ") and len(err.strip().splitlines()) == 1, err
    for word in ("sum_runtime_axes", "ReduceSum", "axes", "topk_runtime_k", "TopK", "run time"):
        assert word in err, err
    assert "relu_fine" not in err and not (tmp_path / "o").exists()


def test_cuda_target():
    from graphopt.codegen.target import cuda_available

    if not cuda_available():
        pytest.skip("no CUDA GPU visible on this machine")
    m = _small_model()
    cm = optimize(m, target="cuda")
    x = np.random.default_rng(0).uniform(-1, 1, (2, 3, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(cm(x), run_reference(graphopt.import_onnx(m), {"x": x})[0], rtol=1e-4, atol=1e-5)


def _nvcc() -> str | None:
    import shutil

    return shutil.which("nvcc")


@pytest.mark.parametrize("what", ["small", "squeezenet", "control-flow-and-vision"])
def test_cuda_cross_compile_without_a_gpu(tmp_path, what):
    """cuda:sm_90 builds (dlight's schedules, nvcc) on a machine without a GPU; the model
    saves, keeps its parameters, and refuses to run where no GPU is visible."""
    from graphopt.compiler import compile_model
    from graphopt.runtime import CompiledModel
    from graphopt.codegen.target import cuda_available
    from graphopt.testing.models import light_model_path

    if _nvcc() is None:
        pytest.skip("nvcc is not on PATH: TVM needs it to build CUDA kernels")
    if what == "small":
        model = _small_model()
    elif what == "squeezenet":
        model = str(light_model_path("squeezenet"))
    else:
        from onnx import TensorProto, helper

        body = helper.make_graph([helper.make_node("Det", ["m"], ["d"]), helper.make_node("Add", ["acc_in", "d"], ["acc"]),
                                  helper.make_node("Identity", ["c_in"], ["c_out"])], "body",
                                 [helper.make_tensor_value_info("i", TensorProto.INT64, []),
                                  helper.make_tensor_value_info("c_in", TensorProto.BOOL, []),
                                  helper.make_tensor_value_info("acc_in", TensorProto.FLOAT, [2])],
                                 [helper.make_tensor_value_info("c_out", TensorProto.BOOL, []),
                                  helper.make_tensor_value_info("acc", TensorProto.FLOAT, [2])])
        g = helper.make_graph(
            [helper.make_node("Loop", ["trips", "", "acc0"], ["total"], body=body),
             helper.make_node("NonMaxSuppression", ["boxes", "scores", "mo"], ["sel"])], "cf",
            [helper.make_tensor_value_info("m", TensorProto.FLOAT, [2, 3, 3]),
             helper.make_tensor_value_info("trips", TensorProto.INT64, []),
             helper.make_tensor_value_info("acc0", TensorProto.FLOAT, [2]),
             helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, 6, 4]),
             helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 2, 6]),
             helper.make_tensor_value_info("mo", TensorProto.INT64, [1])],
            [helper.make_tensor_value_info("total", TensorProto.FLOAT, [2]),
             helper.make_tensor_value_info("sel", TensorProto.INT64, ["k", 3])])
        model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)
    cm = compile_model(model, "cuda:sm_90")
    assert cm.report.kernels > 0 and cm.report.scheduled.get("dlight", 0) > 0, cm.report.summary()
    assert cm.report.target == "cuda-sm90"
    out = cm.save(tmp_path / "art")
    assert json.loads((out / "manifest.json").read_text())["target"] == "cuda:sm_90"
    if not cuda_available():
        with pytest.raises(graphopt.GraphoptError, match="no CUDA GPU"):
            cm.run(*[np.zeros([d if isinstance(d, int) else 1 for d in i["shape"]], i["dtype"])
                     for i in cm.manifest["inputs"]])
        with pytest.raises(graphopt.GraphoptError, match="no CUDA GPU"):
            CompiledModel.load(out)
