"""`graphopt quantize` and `graphopt.quantize`: weight-only int8 (and int4) written as QDQ ONNX that
onnxruntime runs and `graphopt compile` turns into the integer kernel; the report's SQNR
and output agreement; one-line errors and no partial file on failure."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import graphopt
from graphopt.cli import main
from graphopt.io import save_graph
from graphopt.ir import DType, Graph, TensorData, TensorType
from graphopt.ops import build


def mlp(K: int = 128, H: int = 256, C: int = 10, seed: int = 0) -> Graph:
    """x [4, K] -> MatMul -> Relu -> Gemm(transB) -> logits [4, C]."""
    rng = np.random.default_rng(seed)
    g = Graph("mlp", {"": 21})
    x = g.add_input("x", TensorType(DType.FLOAT32, (4, K)))
    w1 = g.add_constant("w1", TensorData.from_numpy((rng.standard_normal((K, H)) / np.sqrt(K)).astype(np.float32)))
    w2 = g.add_constant("w2", TensorData.from_numpy((rng.standard_normal((C, H)) / np.sqrt(H)).astype(np.float32)))
    b2 = g.add_constant("b2", TensorData.from_numpy(np.zeros(C, np.float32)))
    h = build(g, "Relu", [build(g, "MatMul", [x, w1], name="fc1").output], name="relu").output
    g.outputs = [build(g, "Gemm", [h, w2, b2], {"transB": 1}, name="fc2").output]
    return g


def test_quantize_cli_writes_qdq_onnx_that_onnxruntime_and_compile_run(tmp_path, capsys):
    src, out, rep = tmp_path / "m.onnx", tmp_path / "q.onnx", tmp_path / "r.json"
    save_graph(mlp(), src)
    data = tmp_path / "cal.npz"
    rng = np.random.default_rng(3)
    np.savez(data, x=rng.standard_normal((3, 4, 128)).astype(np.float32))
    assert main(["quantize", str(src), "--block", "32", "--min-elements", "1000", "--calibration", str(data),
                 "-o", str(out), "--report", str(rep)]) == 0
    err = capsys.readouterr().err
    assert "quantized 2 weights to int8 block 32" in err and "top-1 agreement" in err
    m = onnx.load(out)
    dqs = [n for n in m.graph.node if n.op_type == "DequantizeLinear"]
    assert len(dqs) == 2
    inits = {i.name: i for i in m.graph.initializer}
    assert all(inits[n.input[0]].data_type == onnx.TensorProto.INT8 for n in dqs)
    report = json.loads(rep.read_text())
    assert report["samples"] == 3 and len(report["weights"]) == 2
    assert all(w["sqnr_db"] > 30 for w in report["weights"]), report["weights"]
    assert report["outputs"][0]["cosine"] > 0.999
    # onnxruntime runs it, and graphopt's compile of it matches onnxruntime's
    x = rng.standard_normal((4, 128)).astype(np.float32)
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    want = sess.run(None, {"x": x})[0]
    compiled = graphopt.optimize(str(out))
    np.testing.assert_allclose(compiled(x), want, rtol=1e-4, atol=1e-5)
    assert sum("gdense" in k for k in compiled.report.kernel_names) == 2, compiled.report.kernel_names


@pytest.mark.parametrize("zero_point", [False, True])
def test_quantize_cli_int4_blocks_of_32_by_default(tmp_path, capsys, zero_point):
    src, out = tmp_path / "m.onnx", tmp_path / "q4.onnx"
    save_graph(mlp(), src)
    assert main(["quantize", str(src), "--weights", "int4", "--min-elements", "1000", "-o", str(out)]
                + (["--zero-point"] if zero_point else [])) == 0
    err = capsys.readouterr().err
    assert f"quantized 2 weights to int4{' with zero points' if zero_point else ''} block 32" in err, err
    m = onnx.load(out)
    inits = {i.name: i for i in m.graph.initializer}
    dqs = [n for n in m.graph.node if n.op_type == "DequantizeLinear"]
    want = onnx.TensorProto.UINT4 if zero_point else onnx.TensorProto.INT4
    assert len(dqs) == 2 and all(inits[n.input[0]].data_type == want for n in dqs)
    assert all(next(a.i for a in n.attribute if a.name == "block_size") == 32 for n in dqs)
    x = np.random.default_rng(5).standard_normal((4, 128)).astype(np.float32)
    want_y = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    compiled = graphopt.optimize(str(out))
    np.testing.assert_allclose(compiled(x), want_y, rtol=1e-4, atol=1e-5)
    assert sum("gq4dense" in k for k in compiled.report.kernel_names) == 2, compiled.report.kernel_names


def test_quantize_api_reports_each_weight_and_keeps_the_input_graph():
    g = mlp()
    before = graphopt.print_ir(g)
    q, report = graphopt.quantize(g, min_elements=1000, exclude=["fc2"])
    assert graphopt.print_ir(g) == before, "the given graph is copied, not changed"
    assert [w.node for w in report.weights] == ["fc1"] and report.weights[0].block == 128
    assert [n.op_type for n in q.nodes].count("DequantizeLinear") == 1
    assert report.samples == 1 and report.outputs[0].name == "fc2"


@pytest.mark.parametrize("args,msg", [
    (["--block", "-2"], "block=-2 must be 0 or positive"),
])
def test_quantize_cli_errors_name_the_model_and_leave_no_file(tmp_path, capsys, args, msg):
    src, out = tmp_path / "m.onnx", tmp_path / "q.onnx"
    save_graph(mlp(), src)
    assert main(["quantize", str(src), *args, "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert msg in err and str(src) in err and "\n" == err[-1] and err.count("\n") == 1, err
    assert not out.exists()


def test_calibration_missing_an_input_says_which(tmp_path):
    with pytest.raises(graphopt.GraphoptError, match="no array for input"):
        graphopt.quantize(mlp(), {"y": np.zeros((2, 4, 128), np.float32)})


def test_quantize_cli_static_calibrates_saves_the_table_and_reuses_it(tmp_path, capsys):
    src, out, again, table = tmp_path / "m.onnx", tmp_path / "q.onnx", tmp_path / "q2.onnx", tmp_path / "t.json"
    save_graph(mlp(), src)
    data = tmp_path / "cal.npz"
    rng = np.random.default_rng(3)
    np.savez(data, x=rng.standard_normal((16, 4, 128)).astype(np.float32))
    assert main(["quantize", str(src), "--min-elements", "1000", "--calibration", str(data), "--method", "entropy",
                 "--save-table", str(table), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "static int8 activations (entropy, 16 samples)" in err and "activation SQNR dB (2 activations)" in err, err
    m = onnx.load(out)
    qls = [n for n in m.graph.node if n.op_type == "QuantizeLinear"]
    inits = {i.name: i for i in m.graph.initializer}
    assert len(qls) == 2 and all(inits[n.input[2]].data_type == onnx.TensorProto.UINT8 for n in qls)
    x = rng.standard_normal((4, 128)).astype(np.float32)
    want = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    compiled = graphopt.optimize(str(out))
    np.testing.assert_allclose(compiled(x), want, rtol=1e-4, atol=1e-4)
    if "avx2" in graphopt.codegen.target.host_cpu().features:
        assert sum("gidense" in k for k in compiled.report.kernel_names) == 2, compiled.report.kernel_names
    # the saved table gives the same model without the data
    assert main(["quantize", str(src), "--min-elements", "1000", "--table", str(table), "-o", str(again)]) == 0
    assert onnx.load(again).graph == m.graph


@pytest.mark.parametrize("args,msg", [
    (["--static"], "static activation quantization needs calibration data"),
    (["--save-table", "t.json"], "--save-table writes the calibration of --static activations"),
    (["--method", "entropy", "--dynamic"], "either statically (calibrated) or dynamically"),
])
def test_quantize_cli_static_errors_leave_no_file(tmp_path, capsys, args, msg):
    src, out = tmp_path / "m.onnx", tmp_path / "q.onnx"
    save_graph(mlp(), src)
    assert main(["quantize", str(src), *args, "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert msg in err and err.count("\n") == 1, err
    assert not out.exists() and not (tmp_path / "t.json").exists()
