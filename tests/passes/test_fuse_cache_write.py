"""fuse-cache-write: the exported index_copy of a static KV cache (Transpose, ScatterND,
Transpose back) becomes graphopt.CacheWrite, exact against the oracle; with inplace=1 the
compiled code writes the cache input's buffer, and only a caller that hands it over sees
it change (the manifest marks the input written; ordinary calls pass a copy)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graphopt
from graphopt.ir import DType, Graph, TensorData, TensorType
from graphopt.ops import build

from passes_testutil import N_EXAMPLES, run_checked

P, INV = [2, 0, 1, 3], [1, 2, 0, 3]


def cache_graph(b=1, h=2, length=8, t=1, d=4, undo=INV, reader=False, dtype=DType.FLOAT32) -> Graph:
    """out = cache.index_copy(2, pos, new) as torch.onnx writes it, times 2 (and, with
    ``reader``, the cache itself read by a second node)."""
    g = Graph("g", {"": 21})
    cache = g.add_input("cache", TensorType(dtype, (b, h, length, d)))
    pos = g.add_input("pos", TensorType(DType.INT64, (t,)))
    new = g.add_input("new", TensorType(dtype, (b, h, t, d)))
    axes = g.add_constant("axes", TensorData.from_numpy(np.array([-1], np.int64)))
    idx = build(g, "Unsqueeze", [pos, axes], name="idx").output
    c = build(g, "Transpose", [cache], {"perm": P}, name="c_t").output
    u = build(g, "Transpose", [new], {"perm": P}, name="u_t").output
    s = build(g, "ScatterND", [c, idx, u], name="scatter").output
    out = build(g, "Transpose", [s], {"perm": undo}, name="index_put").output
    g.outputs = [out]
    if reader:
        g.outputs.append(build(g, "Neg", [cache], name="reader").output)
    return g


def feeds(b=1, h=2, length=8, t=1, d=4, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return {"cache": rng.standard_normal((b, h, length, d)).astype(dtype),
            "pos": rng.permutation(length)[:t].astype(np.int64),
            "new": rng.standard_normal((b, h, t, d)).astype(dtype)}


def aligned(a: np.ndarray) -> np.ndarray:
    """``a`` copied to a 64-byte aligned buffer (TVM reads such an array in place)."""
    raw = np.empty(a.nbytes + 64, np.uint8)
    start = -raw.ctypes.data % 64
    out = raw[start:start + a.nbytes].view(a.dtype).reshape(a.shape)
    out[...] = a
    return out


def ops(g):
    return [n.qualified_op for n in g.nodes]


def test_changed():
    g = cache_graph()
    run_checked(g, ["fuse-cache-write", "simplify", "dce"], feeds())
    assert "graphopt.CacheWrite" in ops(g) and "ScatterND" not in ops(g)
    (w,) = [n for n in g.nodes if n.op_type == "CacheWrite"]
    assert w.attr("axis") == 2 and w.attr("inplace") == 0
    assert w.provenance.rule == "fuse-cache-write.index-copy"
    text = graphopt.print_ir(g)
    assert graphopt.print_ir(graphopt.parse_ir(text)) == text


def test_a_transpose_that_does_not_undo_the_first_is_left_alone():
    g = cache_graph(undo=[1, 0, 2, 3])
    before = graphopt.print_ir(g)
    run = run_checked(g, ["fuse-cache-write"], feeds())
    assert not any(r.changed for r in run.records) and graphopt.print_ir(g) == before
    out = io.StringIO()
    graphopt.run_passes(g, ["fuse-cache-write"], explain=out)
    assert "does not undo" in out.getvalue(), out.getvalue()


@pytest.mark.parametrize("reader, inplace", [(False, 1), (True, 0)])
def test_inplace_only_for_an_input_nothing_else_reads(reader, inplace):
    g = cache_graph(reader=reader)
    graphopt.run_passes(g, ["fuse-cache-write{inplace=1}"])
    (w,) = [n for n in g.nodes if n.op_type == "CacheWrite"]
    assert w.attr("inplace") == inplace


@settings(max_examples=min(N_EXAMPLES, 25), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 2), st.integers(1, 3), st.integers(2, 12), st.integers(1, 4), st.sampled_from([1, 4, 8]),
       st.integers(0, 2 ** 16))
def test_compiled_in_place_and_not_match_the_oracle(b, h, length, t, d, seed):
    from graphopt.testing import assert_close, run_reference

    t = min(t, length)
    f = feeds(b, h, length, t, d, seed)
    want = run_reference(cache_graph(b, h, length, t, d), f)
    for inplace in (0, 1):
        g = cache_graph(b, h, length, t, d)
        graphopt.run_passes(g, [f"fuse-cache-write{{inplace={inplace}}}", "simplify", "dce"])
        compiled = graphopt.optimize(g, opt_level=None)
        given_cache = f["cache"].copy()
        assert_close(want, compiled.run(**f))
        np.testing.assert_array_equal(f["cache"], given_cache)  # a call never writes the caller's array


def test_an_inplace_model_marks_its_input_written_and_writes_only_a_handed_over_buffer(tmp_path):
    g = cache_graph(length=256, t=2)  # 16 KiB: past the size a call copies anyway
    graphopt.run_passes(g, ["fuse-cache-write{inplace=1}", "simplify", "dce"])
    compiled = graphopt.optimize(g, opt_level=None)
    spec = {i["name"]: i for i in compiled.manifest["inputs"]}
    assert spec["cache"].get("written") is True and "written" not in spec["new"]
    f = feeds(length=256, t=2)
    f["cache"] = aligned(f["cache"])  # what a call would hand TVM without copying
    given_cache = f["cache"].copy()
    want = compiled.run(**f)[0]
    np.testing.assert_array_equal(f["cache"], given_cache)
    stage = compiled.stages[0]
    tensors = [stage.to_device(f[k]) for k in ("cache", "pos", "new")]
    (out,) = stage.call_tensors(tensors)
    assert out.data_ptr() == tensors[0].data_ptr()  # the cache's own buffer, written
    np.testing.assert_array_equal(tensors[0].numpy(), want)
    for m in (compiled, graphopt.load(compiled.save(tmp_path / "m"))):
        np.testing.assert_array_equal(m.run(**f)[0], want)
        np.testing.assert_array_equal(f["cache"], given_cache)


def test_a_staged_compile_writes_copies(monkeypatch, tmp_path):
    # --fallback ort splits the model into stages, whose TVM stages read values the caller
    # or other stages own: there the cache write copies, and no input is marked written.
    from graphopt.codegen.lower.registry import TABLE
    from graphopt.testing import assert_close, run_reference

    g = cache_graph(length=256)  # 16 KiB: past the size a call copies anyway
    new = next(v for v in g.inputs if v.name == "new")
    g.outputs.append(build(g, "Neg", [new], name="gap").output)
    graphopt.run_passes(g, ["fuse-cache-write{inplace=1}", "simplify", "dce"])
    f = feeds(length=256)
    f["cache"] = aligned(f["cache"])  # what a call would hand TVM without copying
    want = run_reference(g, f)
    monkeypatch.delitem(TABLE, "Neg")  # a gap: Neg runs on onnxruntime
    compiled = graphopt.optimize(g, opt_level=None, fallback="ort")
    assert compiled.fallback_nodes == ["gap"]
    assert not any(i.get("written") for i in compiled.manifest["inputs"])
    given_cache = f["cache"].copy()
    for m in (compiled, graphopt.load(compiled.save(tmp_path / "m"))):
        assert_close(want, m.run(**f))
        np.testing.assert_array_equal(f["cache"], given_cache)
