"""The fusion report (graphopt.fusion_report, `graphopt opt --report`, `graphopt compile
--report`): a layer norm that fuses is counted with its source nodes named, one whose
variance is also a graph output is listed as a near miss with the matcher's reason; the
JSON file is written atomically (nothing on failure); a compile lists its kernels."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

import graphopt
from graphopt.cli import main
from graphopt.io import save_graph
from graphopt.ir import DType, Graph, TensorData, TensorType
from graphopt.ir.verifier import verify
from graphopt.ops import build
from graphopt.testing import assert_close, run_reference

LN1 = {"ln1_mean", "ln1_sub", "ln1_pow", "ln1_var", "ln1_eps", "ln1_sqrt", "ln1_div", "ln1_scale", "ln1_bias"}
RMS = {"rms_sq", "rms_mean", "rms_eps", "rms_sqrt", "rms_div", "rms_w"}
SHARED_VAR = "%ln2_var is also a graph output"


def _c(g: Graph, a, dt=np.float32):
    return g.add_constant(g.fresh_name("c"), TensorData.from_numpy(np.asarray(a, dt)))


def _layer_norm(g: Graph, x, p: str, affine: bool):
    """(x - mean) / sqrt(mean((x - mean)^2) + eps) [* s + b], every node named ``p_*``."""
    def n(op, ins, name, **attrs):
        return build(g, op, ins, attrs or None, name=f"{p}_{name}").output

    d = n("Sub", [x, n("ReduceMean", [x, _c(g, [-1], np.int64)], "mean", keepdims=1)], "sub")
    var = n("ReduceMean", [n("Pow", [d, _c(g, 2.0)], "pow"), _c(g, [-1], np.int64)], "var", keepdims=1)
    y = n("Div", [d, n("Sqrt", [n("Add", [var, _c(g, 1e-5)], "eps")], "sqrt")], "div")
    if affine:
        rng = np.random.default_rng(0)
        y = n("Add", [n("Mul", [y, _c(g, rng.uniform(0.5, 1.5, 8))], "scale"), _c(g, rng.standard_normal(8))], "bias")
    return y, var


def model() -> Graph:
    """A layer norm that fuses (ln1, with its scale and bias), one that does not (ln2: its
    variance is also an output) and an RMS norm (the kernel graphopt builds on its own)."""
    g = Graph("g", {"": 21})
    x = g.add_input("x", TensorType(DType.FLOAT32, (2, 3, 8)))
    z = g.add_input("z", TensorType(DType.FLOAT32, (2, 3, 8)))  # not x: cse would merge the two norms
    y1, _ = _layer_norm(g, x, "ln1", affine=True)
    y2, var2 = _layer_norm(g, z, "ln2", affine=False)
    sq = build(g, "Mul", [x, x], name="rms_sq").output
    mean = build(g, "ReduceMean", [sq, _c(g, [-1], np.int64)], {"keepdims": 1}, name="rms_mean").output
    root = build(g, "Sqrt", [build(g, "Add", [mean, _c(g, 1e-6)], name="rms_eps").output], name="rms_sqrt").output
    r = build(g, "Div", [x, root], name="rms_div").output
    r = build(g, "Mul", [r, _c(g, np.linspace(0.5, 1.5, 8))], name="rms_w").output
    g.outputs = [y1, y2, var2, r]
    verify(g)
    return g


def _inputs():
    rng = np.random.default_rng(1)
    return {k: rng.standard_normal((2, 3, 8)).astype(np.float32) for k in ("x", "z")}


def _pattern(rep, rule):
    return next(p for p in rep["patterns"] if p["rule"] == rule)


def _fused(rep, op):
    found = [f for f in rep["fused_nodes"] if f["op"] == op]
    assert len(found) == 1, rep["fused_nodes"]
    return found[0]


def test_the_fused_norm_is_counted_with_its_source_nodes_and_the_other_is_a_near_miss():
    g = model()
    expected = run_reference(g, _inputs())
    rep = graphopt.fusion_report(g, "O2", verify_each=True)
    verify(g)
    assert_close(expected, run_reference(g, _inputs()))  # the report's graph still computes the model
    # changed: ln1 became one LayerNormalization (its scale and bias folded in), the RMS norm an RMSNorm
    assert rep["fused_ops"] == {"LayerNormalization": 1, "graphopt.RMSNorm": 1}
    for rule in ("fuse-layer-norm.div-sqrt", "fuse-layer-norm.scale", "fuse-layer-norm.bias", "fuse-rms-norm.div-sqrt"):
        assert _pattern(rep, rule)["applied"] == 1, rule
    assert rep["passes"]["fuse-layer-norm"] == {"applied": 3, "rules": {
        "fuse-layer-norm.div-sqrt": 1, "fuse-layer-norm.scale": 1, "fuse-layer-norm.bias": 1}}
    ln = _fused(rep, "LayerNormalization")
    # the sources are the model's nodes, through the rewrites of rewrites (norm, then scale, then bias)
    assert set(ln["sources"]) == LN1 and ln["origin"] == "rewrite"
    assert ln["rules"] == ["fuse-layer-norm.div-sqrt", "fuse-layer-norm.scale", "fuse-layer-norm.bias"]
    assert ln["rule"] == "fuse-layer-norm.bias" and "ln1_bias" in ln["matched"]
    assert set(_fused(rep, "graphopt.RMSNorm")["sources"]) == RMS
    # unchanged: ln2, and why (the matcher's reason), at its root
    miss = [m for m in rep["misses"] if m["rule"] == "fuse-layer-norm.div-sqrt"]
    assert miss == [{"rule": "fuse-layer-norm.div-sqrt", "site": "ln2_div (Div)", "node": "ln2_div", "op": "Div",
                     "reason": SHARED_VAR, "fused_into": None}]
    assert _pattern(rep, "fuse-layer-norm.div-sqrt")["near_misses"] == 1
    # only near misses are listed (the pattern fitted, a condition refused); a Mul that merely is a
    # Mul is counted, not listed
    assert {m["rule"] for m in rep["misses"]} <= {"fuse-layer-norm.div-sqrt", "fuse-rms-norm.div-sqrt"}
    assert all(m["reason"] == SHARED_VAR for m in rep["misses"])
    assert rep["misses_not_listed"]["fuse-gelu.erf"] > 0 and "fuse-gelu.erf" not in {m["rule"] for m in rep["misses"]}
    json.loads(json.dumps(rep))  # JSON-able


def test_nothing_to_fuse_reports_nothing_applied():
    g = Graph("g", {"": 21})
    x = g.add_input("x", TensorType(DType.FLOAT32, (2, 8)))
    g.outputs = [build(g, "Relu", [build(g, "Exp", [x], name="exp").output], name="relu").output]
    rep = graphopt.fusion_report(g, "O2")
    assert rep["applied"] == 0 and rep["fused_nodes"] == [] and rep["fused_ops"] == {}
    assert rep["misses"] == [] and rep["passes"] == {}
    assert all(p["applied"] == 0 for p in rep["patterns"])


def test_a_second_run_applies_nothing_and_still_names_the_fused_nodes():
    g = model()
    graphopt.fusion_report(g, "O2")
    again = graphopt.fusion_report(g, "O2")
    assert again["applied"] == 0 and again["passes"] == {}
    assert again["fused_ops"] == {"LayerNormalization": 1, "graphopt.RMSNorm": 1}
    ln = _fused(again, "LayerNormalization")
    # the node's provenance (from the first run) is what is known now: its matched nodes
    assert ln["origin"] == "provenance" and ln["rules"] == ["fuse-layer-norm.bias"] and "ln1_bias" in ln["sources"]
    assert [m["node"] for m in again["misses"] if m["rule"] == "fuse-layer-norm.div-sqrt"] == ["ln2_div"]


def test_only_narrows_to_the_rules_named():
    rep = graphopt.fusion_report(model(), "O2", only="rms-norm")
    assert rep["only"] == "rms-norm"
    assert rep["patterns"] and all("rms-norm" in p["rule"] for p in rep["patterns"])
    assert rep["fused_ops"] == {"graphopt.RMSNorm": 1}
    assert [m["rule"] for m in rep["misses"]] == ["fuse-rms-norm.div-sqrt"]


def test_without_the_explain_log_the_misses_are_unknown():
    from graphopt.pipeline import fusion_report, run_pipeline

    g = model()
    run = run_pipeline(g, "O2")
    rep = fusion_report(g, run.ctx)
    assert rep["misses"] is None and "misses" in rep["unknown"]
    assert _fused(rep, "LayerNormalization")["sources"] and rep["fused_ops"]["LayerNormalization"] == 1


# --------------------------------------------------------------------------- the CLI
@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "m.onnx"
    save_graph(model(), path)
    return path


def test_opt_report_writes_the_json_and_a_summary(model_file, tmp_path, capsys):
    out, rpath = tmp_path / "o.onnx", tmp_path / "report.json"
    assert main(["opt", str(model_file), "-O2", "-o", str(out), "--report", str(rpath)]) == 0
    err = capsys.readouterr().err
    rep = json.loads(rpath.read_text())
    assert rep["format"] == "graphopt.fusion-report/1" and rep["fused_ops"]["LayerNormalization"] == 1
    assert rep["model"] == str(model_file)
    assert set(_fused(rep, "LayerNormalization")["sources"]) == LN1
    assert any(m["node"] == "ln2_div" and m["reason"] == SHARED_VAR for m in rep["misses"])
    assert "fusion report: 2 fused node(s)" in err and "fuse-layer-norm.div-sqrt: applied 1, near misses 1" in err
    assert "--explain" in err and "=== explain ===" not in err  # the log is recorded, not printed
    assert out.exists()


def test_opt_report_honours_explain_pattern(model_file, tmp_path, capsys):
    rpath = tmp_path / "r.json"
    assert main(["opt", str(model_file), "-O2", "-o", str(tmp_path / "o.ir"), "--explain", "fuse-layer-norm",
                 "--report", str(rpath)]) == 0
    err = capsys.readouterr().err
    rep = json.loads(rpath.read_text())
    assert rep["only"] == "fuse-layer-norm" and all("fuse-layer-norm" in p["rule"] for p in rep["patterns"])
    assert rep["fused_ops"] == {"LayerNormalization": 1}
    assert "=== explain ===" in err and "rule fuse-layer-norm.div-sqrt" in err and "rule fuse-gelu" not in err


def test_opt_report_leaves_nothing_on_failure(model_file, tmp_path, capsys):
    rpath, out = tmp_path / "r.json", tmp_path / "o.onnx"
    for argv, msg in [
        (["--passes", "fuse-layer-nrm"], "unknown pass 'fuse-layer-nrm'"),       # the pipeline fails
        (["-o", str(tmp_path / "o.txt")], "unknown output format"),              # the output is refused
    ]:
        assert main(["opt", str(model_file), "--report", str(rpath)] + argv) == 1
        err = capsys.readouterr().err
        assert err.startswith("graphopt: error: ") and msg in err and err.count("\n") == 1, err
    # a report path that cannot be written fails before any work: no output either
    assert main(["opt", str(model_file), "-o", str(out), "--report", str(tmp_path / "no" / "r.json")]) == 1
    assert "folder" in capsys.readouterr().err
    assert main(["opt", str(model_file), "-o", str(out), "--report", str(tmp_path)]) == 1
    assert "is a directory" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_compile_report_lists_the_kernels(model_file, tmp_path, capsys):
    rpath = tmp_path / "r.json"
    assert main(["compile", str(model_file), "-o", str(tmp_path / "art"), "--report", str(rpath)]) == 0
    out = capsys.readouterr()
    rep = json.loads(rpath.read_text())
    assert (tmp_path / "art").is_dir() and "kernel(s)" in out.err
    assert len(rep["kernels"]) == graphopt.load(tmp_path / "art").manifest["report"]["kernels"]
    kernels = {k["name"]: k for k in rep["kernels"]}
    # graphopt's own kernel (the RMSNorm, from its decomposition) is exactly its node
    rms = _fused(rep, "graphopt.RMSNorm")
    k = kernels[rms["kernel"]]
    assert k["node"] == rms["name"] and k["decided_by"] == "graphopt" and set(k["sources"]) == RMS
    # the others TVM's FuseOps grouped: their nodes where the build mapped its calls to graph
    # values, else null and said so
    others = [k for k in rep["kernels"] if k["decided_by"] == "tvm-fuseops"]
    assert others and all(k["node"] is None for k in others)
    model_nodes = {n.name for n in model().nodes}
    for k in others:
        if k["nodes"] is None:
            assert k["sources"] is None and "kernel_nodes" in rep["unknown"]
        else:
            assert set(k["sources"]) <= model_nodes, k
    # the build's kernel map names every TVM-grouped kernel's nodes: every node of ln2 has its kernel
    assert all(k["nodes"] for k in others), [k for k in others if not k["nodes"]]
    assert {"ln2_sub", "ln2_div"} <= {nm for k in others for nm in k["nodes"]}
    assert _fused(rep, "LayerNormalization")["kernel"] in kernels
    assert "kernel_nodes" not in rep.get("unknown", {}) or "null" not in rep["unknown"]["kernel_nodes"]
    assert "whose graph nodes are not known" not in out.err
    assert all(k["tuning_key"] is None for k in rep["kernels"])  # not tuned


def test_compile_report_leaves_nothing_when_the_compile_fails(model_file, tmp_path, capsys, monkeypatch):
    from graphopt.codegen.lower.registry import TABLE

    monkeypatch.delitem(TABLE, "LayerNormalization")  # the fused norm cannot lower now
    rpath, art = tmp_path / "r.json", tmp_path / "art"
    assert main(["compile", str(model_file), "-o", str(art), "--report", str(rpath)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("graphopt: error: ") and "LayerNormalization" in err, err
    assert not rpath.exists() and not art.exists()


def test_compile_report_python_and_explain(tmp_path, capsys):
    from graphopt.compiler import compile_model

    cm = compile_model(model(), fusion_report="layer-norm", explain="layer-norm")
    rep = cm.report.fusion
    assert rep["only"] == "layer-norm" and rep["fused_ops"] == {"LayerNormalization": 1}
    assert "rule fuse-layer-norm.div-sqrt" in capsys.readouterr().err
    assert compile_model(model()).report.fusion is None  # only when asked for


def test_a_fused_group_names_its_body_nodes_and_kernels_take_the_tuning_key():
    from graphopt.ir.function import outline
    from graphopt.pipeline import run_pipeline
    from graphopt.pipeline.report import add_kernels

    g = Graph("g", {"": 21})
    x = g.add_input("x", TensorType(DType.FLOAT32, (2, 8)))
    a = build(g, "Relu", [x], name="relu").output
    b = build(g, "Exp", [a], name="exp").output
    g.outputs = [build(g, "Neg", [b], name="neg").output]
    outline(g, [a.producer, b.producer], name="grp")
    run = run_pipeline(g, "dce", explain=io.StringIO())
    rep = graphopt.pipeline.fusion_report(g, run.ctx)
    grp = _fused(rep, "graphopt.FusedGroup")
    assert grp["sources"] == ["relu", "exp"] and grp["origin"] == "input"
    # a compile's kernels: the group's own kernel is the group; the tuned task's key is given by name
    tuning = {"tasks": [{"name": "fused_grp", "key": "00ab", "used": True}]}
    calls = [{"kernel": "negative", "outputs": [[{"value": "neg", "node": "neg", "op": "Neg"}]], "inside": []}]
    add_kernels(rep, g, run.ctx, ["fused_grp", "negative", "other"], tuning,
                lambda n: "fused_" + n.name if n.op_type == "FusedGroup" else None, calls)
    k = {e["name"]: e for e in rep["kernels"]}
    assert k["fused_grp"]["node"] == "grp" and k["fused_grp"]["tuning_key"] == "00ab" and k["fused_grp"]["tuned_used"]
    assert k["fused_grp"]["sources"] == ["relu", "exp"]
    assert k["negative"]["nodes"] == ["neg"] and k["negative"]["tuning_key"] is None and "tuning_unknown" in k["negative"]
    assert k["other"]["nodes"] is None and "kernel_nodes" in rep["unknown"]
    assert grp["kernel"] == "fused_grp"


def test_a_compile_with_onnxruntime_regions_lists_every_tvm_stage_kernel(monkeypatch):
    from graphopt.codegen.lower.registry import TABLE
    from graphopt.compiler import compile_model

    monkeypatch.delitem(TABLE, "Det")  # an op with no lowering: its node runs on onnxruntime
    g = Graph("g", {"": 21})
    x = g.add_input("x", TensorType(DType.FLOAT32, (2, 4, 4)))
    d = build(g, "Det", [build(g, "Abs", [x], name="abs").output], name="det").output
    g.outputs = [build(g, "Neg", [build(g, "Exp", [d], name="exp").output], name="neg").output]
    cm = compile_model(g, fallback="ort", fusion_report=True)
    rep = cm.report.fusion
    assert cm.report.fallback_nodes == ["det"]
    assert len(rep["kernels"]) == cm.report.kernels >= 2  # one stage before Det, one after
    for k in rep["kernels"]:  # each stage's kernel map names its kernels' nodes
        assert k["nodes"] and set(k["nodes"]) <= {"abs", "exp", "neg"}, k
    assert {"abs", "exp", "neg"} <= {nm for k in rep["kernels"] for nm in k["nodes"]}
    xs = np.random.default_rng(2).standard_normal((2, 4, 4)).astype(np.float32)
    got = cm(xs)
    np.testing.assert_allclose(got[0] if isinstance(got, (list, tuple)) else got,
                               -np.exp(np.linalg.det(np.abs(xs))), rtol=1e-4)  # the stages still compute it
