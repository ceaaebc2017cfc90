"""graphopt.compare_intermediates and `graphopt run ART --compare-intermediates`: each
kernel call's outputs against onnxruntime's values of the same graph values. A clean model
has nothing diverging; a model with one corrupted weight names the kernel that reads it
first (and its node); the compiled program is untouched by the comparison; the build's
kernel map names the graph values of the kernels TVM's FuseOps grouped."""

from __future__ import annotations

import json

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphopt
from graphopt.cli import main
from graphopt.codegen import artifact
from graphopt.compiler import compile_model

RNG = np.random.default_rng(7)
W1 = RNG.standard_normal((8, 16)).astype(np.float32) * 0.3
B1 = RNG.standard_normal(16).astype(np.float32)
W2 = RNG.standard_normal((16, 8)).astype(np.float32) * 0.3


def _model():
    """x @ W1 + b1 -> Relu -> layer norm (decomposed; fuse-layer-norm at -O2) -> @ W2 ->
    Split in two -> a * b, and the Relu's value as a second output."""
    n = helper.make_node
    c = numpy_helper.from_array
    nodes = [
        n("MatMul", ["x", "w1"], ["mm1_out"], name="mm1"),
        n("Add", ["mm1_out", "b1"], ["add1_out"], name="add1"),
        n("Relu", ["add1_out"], ["h"], name="relu"),
        n("ReduceMean", ["h", "axes"], ["mean"], name="ln_mean", keepdims=1),
        n("Sub", ["h", "mean"], ["d"], name="ln_sub"),
        n("Pow", ["d", "two"], ["d2"], name="ln_pow"),
        n("ReduceMean", ["d2", "axes"], ["var"], name="ln_var", keepdims=1),
        n("Add", ["var", "eps"], ["ve"], name="ln_eps"),
        n("Sqrt", ["ve"], ["sd"], name="ln_sqrt"),
        n("Div", ["d", "sd"], ["ln"], name="ln_div"),
        n("MatMul", ["ln", "w2"], ["y"], name="mm2"),
        n("Split", ["y", "halves"], ["ya", "yb"], name="split", axis=1),
        n("Mul", ["ya", "yb"], ["out"], name="mul"),
    ]
    inits = [c(W1, "w1"), c(B1, "b1"), c(W2, "w2"), c(np.array([-1], np.int64), "axes"),
             c(np.array(2.0, np.float32), "two"), c(np.array(1e-5, np.float32), "eps"),
             c(np.array([4, 4], np.int64), "halves")]
    g = helper.make_graph(nodes, "inter", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8])],
                          [helper.make_tensor_value_info("out", TensorProto.FLOAT, [2, 4]),
                           helper.make_tensor_value_info("h", TensorProto.FLOAT, [2, 16])], initializer=inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)])


X = np.random.default_rng(1).standard_normal((2, 8)).astype(np.float32)


@pytest.fixture(scope="module", params=["O1", "O2"])
def compiled(request):
    return compile_model(_model(), opt_level=request.param)


def _w2_param(cm):
    """The index of the parameter holding W2 (in whatever layout the dense kernel packs it)."""
    params = cm.stages[0].host_params()
    hits = [i for i, p in enumerate(params) if p.size == W2.size and np.array_equal(np.sort(p.ravel()), np.sort(W2.ravel()))]
    assert len(hits) == 1, [p.shape for p in params]
    return hits[0]


def _corrupt(cm):
    st = cm.stages[0]
    i = _w2_param(cm)
    bad = st.params[i].numpy() * 3.0   # (adding a constant would not show: layer-normed rows sum to 0)
    st.params[i].copyfrom(bad)
    return i


def test_clean_model_nothing_diverges(compiled):
    rep = graphopt.compare_intermediates(compiled, {"x": X})
    assert rep.first is None, str(rep)
    assert rep.compared > 0 and rep.count("not-captured") == 0
    compared = {c.node for c in rep.checks if c.status == "ok"}
    assert {"mul"} <= compared                            # the last kernel, a graph output
    assert "no kernel output diverges" in str(rep) and f"{rep.compared} kernel output(s) compared" in str(rep)
    assert rep.generated == []


def test_a_wrong_weight_names_the_kernel_that_reads_it():
    cm = compile_model(_model(), opt_level="O2")
    _corrupt(cm)
    rep = graphopt.compare_intermediates(cm, {"x": X})
    first = rep.first
    assert first is not None, str(rep)
    assert "mm2" in first.nodes, (first, str(rep))
    # everything before it agrees: the layer norm's kernel, the first matmul's
    before = [c for c in rep.checks if c.position < first.position]
    assert before and all(c.status in ("ok", "no-oracle") for c in before)
    # the Relu is computed in -O2's group-kernels group of the first matmul, k_mm1
    assert any(c.status == "ok" and {"relu", "k_mm1"} & set(c.nodes) for c in before)
    assert first.max_abs > 1e-2 and first.mismatched > 0 and first.rtol is not None
    text = str(rep)
    assert f"first diverging kernel: kernel {first.kernel}" in text and "mm2" in text and "max abs error" in text
    # the numbers are the oracle's: the corrupted model's output is wrong against onnxruntime too
    import onnxruntime as ort

    want = ort.InferenceSession(_model().SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": X})
    assert not np.allclose(cm(X)[0], want[0], atol=1e-3)


def test_tolerance_given_is_used():
    cm = compile_model(_model(), opt_level="O1")
    _corrupt(cm)
    rep = graphopt.compare_intermediates(cm, {"x": X}, rtol=0.0, atol=1e6)  # anything passes
    assert rep.first is None and rep.compared > 0


def test_the_compiled_program_is_unchanged(compiled):
    st = compiled.stages[0]
    vm, fn = st.vm, st.fn
    kernels = json.dumps(compiled.manifest["kernels"], sort_keys=True)
    names = list(compiled.report.kernel_names)
    before = [a.copy() for a in compiled.run(X)]
    graphopt.compare_intermediates(compiled, {"x": X})
    after = compiled.run(X)
    for a, b in zip(before, after):
        assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    assert st.vm is vm and st.fn is fn
    assert json.dumps(compiled.manifest["kernels"], sort_keys=True) == kernels
    assert compiled.report.kernel_names == names


def test_the_kernel_map_names_each_call(compiled):
    calls = compiled.manifest["kernels"]
    assert calls and all(c["kernel"] for c in calls)
    built = set(compiled.report.kernel_names)
    assert all(c["kernel"] in built for c in calls)
    named = {w["node"] for c in calls for g in c["outputs"] for w in g} | {w["node"] for c in calls for w in c["inside"]}
    assert {"mul", "mm2"} <= named or {"mul"} <= named and any("mm2" in (w["node"] for w in c["inside"]) for c in calls)
    # each call's outputs are named (the split's call has two)
    assert all(all(g for g in c["outputs"]) for c in calls), calls


def test_generated_inputs_are_deterministic_and_said(compiled, tmp_path):
    a = graphopt.compare_intermediates(compiled)
    b = graphopt.compare_intermediates(compiled)
    assert a.generated == ["x"] and "inputs generated (seeded random, seed 0" in str(a)
    assert [(c.kernel, c.max_abs) for c in a.checks] == [(c.kernel, c.max_abs) for c in b.checks]
    assert a.first is None


def _save_corrupted(tmp_path):
    cm = compile_model(_model(), opt_level="O2")
    art = tmp_path / "art"
    cm.save(art)
    i = _w2_param(cm)
    with np.load(art / artifact.PARAMS) as z:
        params = {k: z[k] for k in z.files}
    params[f"p{i}"] = params[f"p{i}"] * 3.0
    with open(art / artifact.PARAMS, "wb") as f:
        np.savez(f, **params)
    m = json.loads((art / artifact.MANIFEST).read_text())
    m["content_hash"] = artifact.content_hash(art, m)   # a consistent artifact, wrong weight
    (art / artifact.MANIFEST).write_text(json.dumps(m))
    return art


def test_cli_prints_the_first_diverging_kernel(tmp_path, capsys):
    art = _save_corrupted(tmp_path)
    xp = tmp_path / "x.npy"
    np.save(xp, X)
    assert main(["run", str(art), "--compare-intermediates", "--input", f"x={xp}"]) == 1
    out = capsys.readouterr().out
    assert "first diverging kernel: kernel " in out and "mm2" in out and "max abs error" in out, out
    assert "inputs generated" not in out
    # clean: exit 0, inputs generated and said so
    import onnx

    clean, src = tmp_path / "clean", tmp_path / "m.onnx"
    onnx.save(_model(), src)
    assert main(["compile", str(src), "-o", str(clean)]) == 0
    capsys.readouterr()
    assert main(["run", str(clean), "--compare-intermediates", "--atol", "1e-4", "--rtol", "1e-3"]) == 0
    out = capsys.readouterr().out
    assert "no kernel output diverges from the oracle (rtol 0.001, atol 0.0001)" in out, out
    assert "inputs generated (seeded random, seed 0; not given): x" in out


def test_saved_and_loaded_artifact_keeps_graph_and_map(tmp_path):
    cm = compile_model(_model(), opt_level="O1")
    cm.save(tmp_path / "a")
    m = graphopt.load(tmp_path / "a")
    assert m.manifest["oracle_model"] == artifact.ORACLE and (tmp_path / "a" / artifact.ORACLE).is_file()
    assert m.manifest["kernels"] == cm.manifest["kernels"]
    m.save(tmp_path / "b")          # a loaded model saves again, graph included
    again = graphopt.compare_intermediates(tmp_path / "b", {"x": X})
    assert again.first is None and again.compared > 0


def test_an_artifact_without_graph_or_map_still_loads(tmp_path):
    art = tmp_path / "old"
    compile_model(_model(), opt_level="O1").save(art)
    m = json.loads((art / artifact.MANIFEST).read_text())
    for k in ("oracle_model", "kernels"):
        m.pop(k)
    (art / artifact.ORACLE).unlink()
    m["content_hash"] = artifact.content_hash(art, m)
    (art / artifact.MANIFEST).write_text(json.dumps(m))
    old = graphopt.load(art)
    assert np.asarray(old(X)[0]).shape == (2, 4)
    with pytest.raises(graphopt.GraphoptError, match="no kernel map.*recompile"):
        graphopt.compare_intermediates(old, {"x": X})


def test_a_bad_kernel_map_is_refused_naming_its_entry(tmp_path):
    art = tmp_path / "bad"
    compile_model(_model(), opt_level="O1").save(art)
    m = json.loads((art / artifact.MANIFEST).read_text())
    m["kernels"][0]["outputs"] = [[{"node": 3}]]
    m["content_hash"] = artifact.content_hash(art, m)
    (art / artifact.MANIFEST).write_text(json.dumps(m))
    with pytest.raises(artifact.ArtifactError, match=r"kernels\[0\]"):
        graphopt.load(art)


def test_an_unknown_input_name_is_refused(compiled):
    with pytest.raises(graphopt.GraphoptError, match="'nope'.*no such input"):
        graphopt.compare_intermediates(compiled, {"nope": X})


def test_a_model_in_stages_compares_every_tvm_stage(monkeypatch):
    from graphopt.codegen.lower.registry import TABLE
    from graphopt.ir import DType, Graph, TensorType
    from graphopt.ops import build

    monkeypatch.delitem(TABLE, "Det")  # an op with no lowering: its node runs on onnxruntime
    g = Graph("g", {"": 21})
    x = g.add_input("x", TensorType(DType.FLOAT32, (2, 4, 4)))
    d = build(g, "Det", [build(g, "Abs", [x], name="abs").output], name="det").output
    g.outputs = [build(g, "Neg", [build(g, "Exp", [d], name="exp").output], name="neg").output]
    cm = compile_model(g, fallback="ort")
    assert len(cm.stages) == 3
    rep = graphopt.compare_intermediates(cm)
    assert rep.first is None, str(rep)
    assert {"abs", "neg"} <= {c.node for c in rep.checks if c.status == "ok"}


def test_a_fused_group_with_two_outputs_is_one_call():
    from graphopt.ir import DType, Graph, TensorType
    from graphopt.ir.function import outline
    from graphopt.ops import build

    g = Graph("g", {"": 21})
    x = g.add_input("x", TensorType(DType.FLOAT32, (2, 8)))
    a = build(g, "Relu", [x], name="relu").output
    b = build(g, "Exp", [a], name="exp").output
    c = build(g, "Neg", [a], name="neg").output
    g.outputs = [build(g, "Add", [b, c], name="add").output, b]
    outline(g, [a.producer, b.producer, c.producer], name="grp")
    cm = compile_model(g, opt_level=None)
    grp = [k for k in cm.manifest["kernels"] if k["kernel"] == "fused_grp"]
    assert len(grp) == 1 and len(grp[0]["outputs"]) == 2, cm.manifest["kernels"]
    rep = graphopt.compare_intermediates(cm)
    assert rep.first is None, str(rep)
    checked = [c for c in rep.checks if c.kernel == "fused_grp"]
    assert [c.output for c in checked] == [0, 1]
    # the group's values live inside its function on the oracle's side: not exposable there
    assert all(c.status in ("ok", "no-oracle") for c in checked) and rep.compared >= 1


def _batched_matmul_model():
    """x[1, 4, 8] @ W1 -> Tanh: the MatMul lowers to a reshape to 2-D, a dense kernel and a
    reshape back (fused into the Tanh's kernel)."""
    n, c = helper.make_node, numpy_helper.from_array
    g = helper.make_graph([n("MatMul", ["x", "w1"], ["m"], name="mm"), n("Tanh", ["m"], ["t"], name="tanh")], "bm",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8])],
                          [helper.make_tensor_value_info("t", TensorProto.FLOAT, [1, 4, 16])], initializer=[c(W1, "w1")])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)])


def test_a_dense_step_is_compared_in_its_values_shape():
    cm = compile_model(_batched_matmul_model(), opt_level="O1")
    parts = [w for c in cm.manifest["kernels"] for g in c["outputs"] for w in g if w.get("part")]
    assert any(w["node"] == "mm" and w.get("reshaped") for w in parts), cm.manifest["kernels"]
    x = np.random.default_rng(3).standard_normal((1, 4, 8)).astype(np.float32)
    rep = graphopt.compare_intermediates(cm, {"x": x})
    assert rep.first is None, str(rep)
    dense = [c for c in rep.checks if c.value == "m" and c.status == "ok"]
    assert dense and "compared in %m's shape" in dense[0].note
    # a wrong weight shows at the dense kernel itself, not only at the Tanh after it
    i = next(i for i, p in enumerate(cm.stages[0].host_params()) if p.size == W1.size)
    cm.stages[0].params[i].copyfrom(cm.stages[0].params[i].numpy() * 3.0)
    first = graphopt.compare_intermediates(cm, {"x": x}).first
    assert first is not None and first.value == "m" and first.node == "mm", first


def _if_model(after: str):
    """y = If(sum(x) > 0) then Neg(x) else Abs(x); then ``after`` in main."""
    n, V = helper.make_node, helper.make_tensor_value_info
    then_g = helper.make_graph([n("Neg", ["x"], ["t0"])], "then", [], [V("t0", TensorProto.FLOAT, [3, 4])])
    else_g = helper.make_graph([n("Abs", ["x"], ["e0"])], "else", [], [V("e0", TensorProto.FLOAT, [3, 4])])
    tail = ([n("Neg", ["y"], ["z"], name="neg"), n("Exp", ["z"], ["out"], name="exp")] if after == "neg-exp"
            else [n("Abs", ["y"], ["out"], name="abs")])
    g = helper.make_graph(
        [n("ReduceSum", ["x"], ["s"], keepdims=0, name="sum"), n("Greater", ["s", "zero"], ["c"], name="gt"),
         n("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g, name="if")] + tail, "ctl",
        [V("x", TensorProto.FLOAT, [3, 4])], [V("out", TensorProto.FLOAT, [3, 4])],
        [numpy_helper.from_array(np.array(0.0, np.float32), "zero")])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)])


@pytest.mark.parametrize("after", ["neg-exp", "abs"])
def test_control_flow_kernels_are_compared_only_where_unambiguous(after):
    """A kernel after an If is followed through it; one whose kernel also runs in a branch
    (main's Abs and the else branch's share it) cannot be told apart and is not captured."""
    cm = compile_model(_if_model(after), opt_level=None)
    for sign in (1, -1):   # each branch
        x = sign * np.abs(np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32))
        rep = graphopt.compare_intermediates(cm, {"x": x})
        assert rep.first is None, str(rep)
        ok = {c.value for c in rep.checks if c.status == "ok"}
        assert {"s", "c"} <= ok, str(rep)
        if after == "neg-exp":
            assert "out" in ok, str(rep)
        else:
            skipped = [c for c in rep.checks if c.status == "not-captured"]
            assert [c.value for c in skipped] == ["out"] and "control flow" in skipped[0].note, str(rep)
