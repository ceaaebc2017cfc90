"""``fallback="ort"``: ops without a lowering run on onnxruntime inside the artifact."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt.errors import UnsupportedOpError

# Every registry op has a lowering now, so these tests make a gap: an autouse fixture takes
# Det out of the lowering table for each test (the fallback must still run it, on
# onnxruntime, exactly as it would an op graphopt never lowered).
GAP_OP = "Det"


@pytest.fixture(autouse=True)
def _gap(monkeypatch):
    from graphopt.codegen.lower.registry import TABLE

    assert GAP_OP in TABLE
    monkeypatch.delitem(TABLE, GAP_OP)


def _gap_op():
    return GAP_OP


def _model(two_regions: bool = False):
    """x -> Abs -> Det -> Add(bias) -> [Reshape -> Mul(abs) -> Det -> Sub(first Det)]
    -> Mul -> y. With ``two_regions`` the first Det's output is also read two stages later."""
    op = _gap_op()
    rng = np.random.default_rng(0)
    bias = numpy_helper.from_array(rng.standard_normal((2,)).astype(np.float32), "bias")
    shp = numpy_helper.from_array(np.array([2, 1, 1], np.int64), "shp")
    nodes = [
        helper.make_node("Abs", ["x"], ["r"], name="abs"),
        helper.make_node(op, ["r"], ["g"], name="gap1"),
        helper.make_node("Add", ["g", "bias"], ["a"], name="add"),
    ]
    last = "a"
    if two_regions:
        nodes += [helper.make_node("Reshape", ["a", "shp"], ["ar"], name="reshape"),
                  helper.make_node("Mul", ["r", "ar"], ["m"], name="mul1"),
                  helper.make_node(op, ["m"], ["g2"], name="gap2"),
                  helper.make_node("Sub", ["g2", "g"], ["s"], name="sub")]
        last = "s"
    nodes.append(helper.make_node("Mul", [last, last], ["y"], name="mul"))
    g = helper.make_graph(nodes, "fb", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])], [bias, shp])
    import graphopt

    return graphopt.import_onnx(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])), op


def _inputs():
    return {"x": np.random.default_rng(1).standard_normal((2, 4, 4)).astype(np.float32)}


def test_without_fallback_lists_every_unsupported_node():
    from graphopt.compiler import compile_model

    graph, op = _model(two_regions=True)
    with pytest.raises(UnsupportedOpError) as ei:
        compile_model(graph, opt_level=None)
    msg = str(ei.value)
    assert "gap1" in msg and "gap2" in msg and op in msg


def test_partition_orders_stages():
    from graphopt.codegen.fallback import ORT, TVM, partition

    graph, _ = _model(two_regions=True)
    units = partition(graph, {"gap1", "gap2"})
    kinds = [u.kind for u in units]
    assert kinds == [TVM, ORT, TVM, ORT, TVM], kinds
    assert units[1].nodes == ["gap1"] and units[3].nodes == ["gap2"]
    assert "g" in units[1].outputs and "g" in units[4].inputs  # region output read two stages later


@pytest.mark.parametrize("two_regions", [False, True])
def test_fallback_matches_oracle_and_survives_save_load(tmp_path, two_regions):
    from graphopt.compiler import compile_model
    from graphopt.runtime import CompiledModel
    from graphopt.testing import assert_close, run_reference

    graph, _ = _model(two_regions)
    cm = compile_model(graph, opt_level=None, fallback="ort")
    want = ["gap1", "gap2"] if two_regions else ["gap1"]
    assert cm.report.fallback_nodes == want
    assert cm.fallback_nodes == want
    assert "onnxruntime" in cm.report.summary()
    x = _inputs()
    expected = run_reference(graph, x)
    assert_close(expected, cm.run(**x), ["y"])
    out = cm.save(tmp_path / "art")
    import json

    man = json.loads((out / "manifest.json").read_text())
    assert [f["node"] for f in man["fallback_nodes"]] == want
    assert sum(1 for s in man["stages"] if s["kind"] == "ort") == len(want)
    for s in man["stages"]:
        assert (out / (s.get("model") or s["lib"])).is_file()
    loaded = CompiledModel.load(out)
    assert loaded.fallback_nodes == want
    np.testing.assert_array_equal(loaded.run(**x)[0], cm.run(**x)[0])
    again = CompiledModel.load(loaded.save(tmp_path / "again"))  # a loaded model saves again
    np.testing.assert_array_equal(again.run(**x)[0], cm.run(**x)[0])


def test_units_are_ir_graphs_cut_from_the_graph():
    from graphopt.codegen.fallback import ORT, partition, unit_graphs
    from graphopt.ir import Graph
    from graphopt.ir.verifier import verify

    graph, op = _model(two_regions=True)
    units = partition(graph, {"gap1", "gap2"})
    unit_graphs(graph, units)
    for u in units:
        assert isinstance(u.graph, Graph)
        verify(u.graph)
        assert [v.name for v in u.graph.inputs] == u.inputs and [v.name for v in u.graph.outputs] == u.outputs
        assert [n.name for n in u.graph.nodes] == u.nodes
    assert [n.op_type for u in units if u.kind == ORT for n in u.graph.nodes] == [op, op]
    assert [c.name for c in units[0].graph.constants] == []  # Abs reads no constant
    assert "bias" in [c.name for c in units[2].graph.constants]  # the constant Add reads is cut with it


def test_fallback_lowers_once(monkeypatch):
    # Nothing refused: the lowering that found no refusal is the one built. An op without a
    # lowering is found without lowering anything: each TVM stage is then lowered once,
    # from its IR graph (no ONNX round trip).
    from graphopt.codegen import lower as lower_pkg
    from graphopt.compiler import compile_model
    from graphopt.frontend import onnx_import

    import graphopt

    calls = []
    real = lower_pkg.lower
    monkeypatch.setattr(lower_pkg, "lower", lambda g, **kw: calls.append(g.name) or real(g, **kw))
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="r")], "plain",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])])
    graph = graphopt.import_onnx(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))
    staged, _ = _model(two_regions=False)
    monkeypatch.setattr(onnx_import, "import_onnx", lambda *a, **k: pytest.fail("a stage went through ONNX"))
    compile_model(graph, opt_level=None, fallback="ort")
    assert calls == ["plain"]
    calls.clear()
    compile_model(staged, opt_level=None, fallback="ort")
    assert calls == ["fb_tvm0", "fb_tvm2"]


def test_fallback_without_unsupported_ops_is_one_tvm_stage():
    from graphopt.compiler import compile_model

    import graphopt

    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="r")], "plain",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])])
    graph = graphopt.import_onnx(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))
    cm = compile_model(graph, opt_level=None, fallback="ort")
    assert cm.report.fallback_nodes == [] and "stages" not in cm.manifest
    np.testing.assert_array_equal(cm(np.array([-1, 2, -3, 4], np.float32)), [0, 2, 0, 4])


def _refused_model():
    """x -> ReduceSum(axes = input a) and TopK(K = input k): ops that lower, but not with
    axes or K computed at run time."""
    import graphopt

    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"),
             helper.make_node("ReduceSum", ["r", "a"], ["s"], name="sum_runtime_axes", keepdims=1),
             helper.make_node("TopK", ["r", "k"], ["v", "i"], name="topk_runtime_k"),
             helper.make_node("Neg", ["s"], ["y"], name="neg")]
    g = helper.make_graph(nodes, "refused", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 5]),
                                             helper.make_tensor_value_info("a", TensorProto.INT64, [1]),
                                             helper.make_tensor_value_info("k", TensorProto.INT64, [1])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 1]),
                           helper.make_tensor_value_info("v", TensorProto.FLOAT, [3, 2])])
    return graphopt.import_onnx(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))


def test_refused_nodes_are_listed_at_once_and_fall_back():
    from graphopt.compiler import compile_model
    from graphopt.codegen.lower import LoweringRefusedError
    from graphopt.testing import assert_close, run_reference

    graph = _refused_model()
    with pytest.raises(LoweringRefusedError) as ei:
        compile_model(graph, opt_level=None)
    msg = str(ei.value)
    assert "sum_runtime_axes" in msg and "topk_runtime_k" in msg and "computed at run time" in msg, msg
    cm = compile_model(graph, opt_level=None, fallback="ort")
    assert cm.report.fallback_nodes == ["sum_runtime_axes", "topk_runtime_k"]
    x = {"x": np.random.default_rng(3).standard_normal((3, 5)).astype(np.float32), "a": np.array([1], np.int64),
         "k": np.array([2], np.int64)}
    assert_close(run_reference(graph, x), cm.run(**x), ["y", "v"])


# --------------------------------------------------------------------------- tampered staged artifacts
@pytest.fixture(scope="module")
def staged_art(tmp_path_factory):
    from graphopt.codegen.lower.registry import TABLE
    from graphopt.compiler import compile_model

    with pytest.MonkeyPatch.context() as mp:
        mp.delitem(TABLE, GAP_OP)
        graph, _ = _model(two_regions=True)
        cm = compile_model(graph, opt_level=None, fallback="ort")
    return cm.save(tmp_path_factory.mktemp("staged") / "art")


@pytest.mark.parametrize("how", ["region-garbage", "stage-params-extra", "stage-libs-swapped", "stage-lib-outside",
                                 "region-outside", "stage-params-garbage", "stage-input-unknown",
                                 "output-of-no-stage"])
def test_tampered_staged_artifact_gives_one_line(staged_art, tmp_path, how, capsys):
    """Each stage's files are checked as a whole model's are (content hash recomputed, as
    a tamperer would): ONNX regions, stage libraries and parameters."""
    import json
    import shutil

    from graphopt.cli import main
    from graphopt.codegen import artifact
    from graphopt.runtime import CompiledModel

    art = tmp_path / "art"
    shutil.copytree(staged_art, art)
    man = json.loads((art / "manifest.json").read_text())
    tvm_stages = [s for s in man["stages"] if s["kind"] == "tvm"]
    ort_stages = [s for s in man["stages"] if s["kind"] == "ort"]
    if how == "region-garbage":
        (art / ort_stages[0]["model"]).write_bytes(b"\x08garbage")
        word = ort_stages[0]["model"]
    elif how == "stage-params-extra":  # (this model's stages keep their few constants inside the library)
        pf = tvm_stages[0]["params"]
        np.savez(open(art / pf, "wb"), p0=np.zeros(3, np.float64))
        word = pf
    elif how == "stage-params-garbage":
        pf = tvm_stages[0]["params"]
        (art / pf).write_bytes(b"PK\x03\x04" + bytes(100))
        word = pf
    elif how == "stage-libs-swapped":
        a, b = tvm_stages[0]["lib"], tvm_stages[1]["lib"]
        da, db = (art / a).read_bytes(), (art / b).read_bytes()
        (art / a).write_bytes(db)
        (art / b).write_bytes(da)
        word = "not the library"
    elif how == "stage-lib-outside":
        shutil.copy(art / tvm_stages[0]["lib"], tmp_path / "foreign.so")
        tvm_stages[0]["lib"] = "../foreign.so"
        man["files"].append("../foreign.so")
        word = "../foreign.so"
    elif how == "stage-input-unknown":
        ort_stages[0]["inputs"] = ["nope"]
        word = "'nope'"
    elif how == "output-of-no-stage":
        man["stages"][-1]["outputs"] = ["elsewhere"]
        word = "'y'"
    else:
        (tmp_path / "foreign.onnx").write_bytes((art / ort_stages[0]["model"]).read_bytes())
        ort_stages[0]["model"] = str(tmp_path / "foreign.onnx")
        man["files"].append(str(tmp_path / "foreign.onnx"))
        word = "foreign.onnx"
    try:
        man["content_hash"] = artifact.content_hash(art, man)
    except OSError:
        pass
    (art / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(artifact.ArtifactError) as ei:
        CompiledModel.load(art)
    assert "\n" not in str(ei.value) and word in str(ei.value), str(ei.value)
    np.save(tmp_path / "x.npy", _inputs()["x"])
    assert main(["run", str(art), "--input", f"x={tmp_path / 'x.npy'}"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("graphopt: error: ") and len(err.strip().splitlines()) == 1, err
