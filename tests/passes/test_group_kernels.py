"""group-kernels: an anchor (matmul, conv, a named row norm) and its elementwise epilogue
become one graphopt.FusedGroup, one kernel; the oracle's numbers do not move; the sites it
refuses say why; the built library has the group's kernel."""

from __future__ import annotations

import io
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graphopt
from graphopt.ir import DType, Graph, TensorData, TensorType, is_fused_group
from graphopt.ops import PatternKind, build
from graphopt.testing import assert_close, run_reference
from graphopt.testing.settings import examples

from passes_testutil import run_checked

F32 = DType.FLOAT32


def _const(g: Graph, name: str, shape, scale=1.0) -> object:
    """A random constant, the same for the same name (graphs built twice compare)."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    return g.add_constant(name, TensorData.from_numpy((rng.standard_normal(shape) * scale).astype(np.float32)))


def chain_graph(ops, *, rank: int = 3, k: int = 16, n: int = 16, transposed_weight: bool = False,
                data_prologue: bool = False, gemm: bool = False) -> Graph:
    """x -> MatMul(W) (or, 2-D, Gemm(x, W^T, c) with transB) -> ops... ; "bias" adds a
    per-column constant, "res" adds x, "scale" multiplies by a scalar, "cast" casts to
    float32 (a no-op cast), others are unary ops."""
    g = Graph("g", {"": 21})
    shape = (2, 3, k) if rank == 3 else (6, k)
    x = g.add_input("x", TensorType(F32, shape))
    h = x
    if data_prologue:
        perm = [1, 0, 2] if rank == 3 else [1, 0]
        h = build(g, "Transpose", [h], {"perm": perm}, name="tx").output
        h = build(g, "Transpose", [h], {"perm": perm}, name="tx_back").output
    if transposed_weight:
        w = build(g, "Transpose", [_const(g, "w_nk", (n, k), k ** -0.5)], {"perm": [1, 0]}, name="wt").output
    else:
        w = _const(g, "w", (k, n), k ** -0.5)
    if gemm:
        v = build(g, "Gemm", [h, _const(g, "w_gemm", (n, k), k ** -0.5), _const(g, "c", (n,))], {"transB": 1},
                  name="mm").output
    else:
        v = build(g, "MatMul", [h, w], name="mm").output
    for i, op in enumerate(ops):
        if op == "bias":
            v = build(g, "Add", [v, _const(g, f"b{i}", (n,))], name=f"bias{i}").output
        elif op == "res":
            v = build(g, "Add", [v, x], name=f"res{i}").output
        elif op == "scale":
            v = build(g, "Mul", [v, _const(g, f"s{i}", ())], name=f"scale{i}").output
        elif op == "cast":
            v = build(g, "Cast", [v], {"to": 1}, name=f"cast{i}").output
        else:
            v = build(g, op, [v], name=f"{op.lower()}{i}").output
    g.outputs = [v]
    return g


def _feeds(g: Graph, seed: int = 1) -> dict:
    rng = np.random.default_rng(seed)
    return {v.name: rng.uniform(-1, 1, v.type.shape).astype(np.float32) for v in g.inputs}


def _explain(g: Graph, passes=("group-kernels",)) -> str:
    out = io.StringIO()
    graphopt.run_passes(g, list(passes), explain=out)
    return out.getvalue()


def _groups(g: Graph):
    return [n for n in g.nodes if is_fused_group(n)]


def _body_ops(group) -> list[str]:
    return [n.qualified_op for n in group.subgraphs()[0].nodes]


def test_matmul_bias_relu_residual_becomes_one_group():
    g = chain_graph(["bias", "Relu", "res"])
    run = run_checked(g, ["group-kernels"], _feeds(g))
    assert [n.qualified_op for n in g.nodes] == ["graphopt.FusedGroup"]
    grp = g.nodes[0]
    assert grp.name == "k_mm" and _body_ops(grp) == ["MatMul", "Add", "Relu", "Add"]
    assert grp.provenance.rule == "group-kernels.group"
    assert grp.provenance.sources == ("mm", "bias0", "relu1", "res2")
    assert all(n.provenance.rule == "group-kernels.group" for n in grp.subgraphs()[0].nodes)
    assert [a.rule for a in run.ctx.applications] == ["group-kernels.group"]
    assert g.outputs[0].name == "res2"  # the graph's output keeps its name
    text = graphopt.print_ir(g)
    assert graphopt.print_ir(graphopt.parse_ir(text)) == text


def test_gelu_ends_the_epilogue_with_its_reason():
    """MatMul + bias + Gelu + residual: the group is the matmul and its bias; Gelu (which
    reads its input twice) and what follows stay with FuseOps (grouped they ran slower)."""
    g = chain_graph(["bias", "Gelu", "res"])
    run_checked(g, ["group-kernels"], _feeds(g))
    assert [n.qualified_op for n in g.nodes] == ["graphopt.FusedGroup", "Gelu", "Add"]
    assert _body_ops(g.nodes[0]) == ["MatMul", "Add"]
    g = chain_graph(["Gelu", "res"])
    assert "gelu0 (Gelu) lowers to several stages that read %mm twice" in _explain(g)
    assert not _groups(g)


def test_value_used_twice_ends_the_chain_before_it():
    g = chain_graph(["bias", "Relu"])
    relu = g.nodes[-1]
    # a second user of the bias Add's value: the chain stops after the Add
    extra = build(g, "Neg", [relu.inputs[0]], name="other_user").output
    g.outputs = [relu.output, extra]
    run_checked(g, ["group-kernels"], _feeds(g))
    assert [n.qualified_op for n in g.nodes] == ["graphopt.FusedGroup", "Relu", "Neg"]
    assert _body_ops(g.nodes[0]) == ["MatMul", "Add"]
    # the anchor's own value used twice: no epilogue at all, nothing grouped
    g = chain_graph(["Relu"])
    mm = g.nodes[0]
    g.outputs = [g.nodes[-1].output, build(g, "Neg", [mm.output], name="other_user").output]
    before = graphopt.print_ir(g)
    run = run_checked(g, ["group-kernels"], _feeds(g))
    assert not any(r.changed for r in run.records) and graphopt.print_ir(g) == before
    assert "mm (MatMul): no epilogue (%mm has 2 uses)" in _explain(g)


def test_lone_elementwise_op_is_not_grouped():
    g = Graph("g", {"": 21})
    x = g.add_input("x", TensorType(F32, (4, 8)))
    g.outputs = [build(g, "Relu", [build(g, "Exp", [x]).output]).output]
    before = graphopt.print_ir(g)
    run = run_checked(g, ["group-kernels"], _feeds(g))
    assert not any(r.changed for r in run.records) and graphopt.print_ir(g) == before


def test_a_matmul_alone_is_not_a_group():
    g = chain_graph([])
    before = graphopt.print_ir(g)
    run_checked(g, ["group-kernels"], _feeds(g))
    assert graphopt.print_ir(g) == before
    assert "the anchor alone is the kernel FuseOps gives it" in _explain(g)


def test_two_anchors_in_a_chain_are_never_one_group():
    g = chain_graph(["bias"])
    v = g.outputs[0]
    v = build(g, "MatMul", [v, _const(g, "w2", (16, 16), 0.25)], name="mm2").output
    v = build(g, "Relu", [v], name="relu2").output
    g.outputs = [v]
    run_checked(g, ["group-kernels"], _feeds(g))
    groups = _groups(g)
    assert [grp.name for grp in groups] == ["k_mm", "k_mm2"]
    assert [_body_ops(grp) for grp in groups] == [["MatMul", "Add"], ["MatMul", "Relu"]]
    # back to back: the first matmul's chain stops at the second
    g = chain_graph([])
    g.outputs = [build(g, "MatMul", [g.outputs[0], _const(g, "w2", (16, 16))], name="mm2").output]
    assert "%mm goes on to mm2 (MatMul), which is not elementwise" in _explain(g)
    assert not _groups(g)


def test_matmul_of_two_activations_is_left_to_fuseops():
    g = Graph("g", {"": 21})
    a = g.add_input("a", TensorType(F32, (4, 8)))
    b = g.add_input("b", TensorType(F32, (8, 4)))
    g.outputs = [build(g, "Relu", [build(g, "MatMul", [a, b], name="mm").output]).output]
    assert "its weight %b is computed, not a constant" in _explain(g)
    assert not _groups(g)


def test_transposed_constant_weight_comes_in_and_keeps_the_dense_kernel():
    g = chain_graph(["bias"], transposed_weight=True)
    feeds = _feeds(g)
    run_checked(g, ["group-kernels"], feeds)
    assert _body_ops(g.nodes[0]) == ["Transpose", "MatMul", "Add"]
    compiled = graphopt.optimize(g, opt_level=None)
    assert compiled.report.kernel_names == ["fused_k_mm"] and compiled.report.scheduled == {"dense": 1}
    assert_close(run_reference(g, feeds), compiled.run(**feeds))


def test_data_prologue_only_when_asked():
    g = chain_graph(["bias"], data_prologue=True)
    run_checked(g, ["group-kernels"], _feeds(g))
    assert _body_ops(_groups(g)[0]) == ["MatMul", "Add"]
    g = chain_graph(["bias"], data_prologue=True)
    feeds = _feeds(g)
    run_checked(g, ["group-kernels{prologues=true}"], feeds)
    assert [n.qualified_op for n in g.nodes] == ["graphopt.FusedGroup"]
    assert _body_ops(g.nodes[0]) == ["Transpose", "Transpose", "MatMul", "Add"]
    compiled = graphopt.optimize(g, opt_level=None)
    assert compiled.report.kernel_names == ["fused_k_mm"]
    assert_close(run_reference(g, feeds), compiled.run(**feeds))


def test_compiled_group_is_one_kernel_named_after_its_anchor():
    """A matmul over a 3-D input: FuseOps gives the dense, the input reshape and the
    epilogue three kernels; grouped, one, named k_<anchor>; same numbers as onnxruntime."""
    feeds = _feeds(chain_graph(["bias", "Relu", "res"]))
    plain = graphopt.optimize(chain_graph(["bias", "Relu", "res"]), opt_level=None)
    g = chain_graph(["bias", "Relu", "res"])
    graphopt.run_passes(g, ["group-kernels"])
    grouped = graphopt.optimize(g, opt_level=None)
    assert plain.report.kernels == 3
    assert grouped.report.kernel_names == ["fused_k_mm"] and grouped.report.scheduled == {"dense": 1}
    want = run_reference(g, feeds)
    assert_close(want, grouped.run(**feeds))
    assert_close(want, plain.run(**feeds))


def test_rms_norm_takes_its_epilogue_into_its_kernel():
    """graphopt.RMSNorm (lowered from its decomposition, inside the group's function) with a
    bias Add (a 32-element constant, embedded: lifted to a parameter) and a Relu."""
    g = Graph("g", {"": 21, "graphopt": 1})
    x = g.add_input("x", TensorType(F32, (4, 32)))
    v = build(g, "RMSNorm", [x, _const(g, "s", (32,))], {"axis": -1}, name="rms", domain="graphopt").output
    v = build(g, "Add", [v, _const(g, "b", (32,))], name="add").output
    g.outputs = [build(g, "Relu", [v], name="relu").output]
    feeds = _feeds(g)
    run_checked(g, ["group-kernels"], feeds)
    assert [n.name for n in g.nodes] == ["k_rms"] and _body_ops(g.nodes[0]) == ["graphopt.RMSNorm", "Add", "Relu"]
    compiled = graphopt.optimize(g, opt_level=None)
    assert compiled.report.kernel_names == ["fused_k_rms"]
    assert_close(run_reference(g, feeds), compiled.run(**feeds))


def test_conv_with_bias_relu_and_residual():
    g = Graph("g", {"": 21})
    x = g.add_input("x", TensorType(F32, (1, 8, 6, 6)))
    v = build(g, "Conv", [x, _const(g, "w", (8, 8, 3, 3), 0.1), _const(g, "cb", (8,))], {"pads": [1, 1, 1, 1]},
              name="conv").output
    v = build(g, "Relu", [v], name="relu").output
    g.outputs = [build(g, "Add", [v, x], name="res").output]
    feeds = _feeds(g)
    run_checked(g, ["group-kernels"], feeds)
    assert [n.name for n in g.nodes] == ["k_conv"]
    compiled = graphopt.optimize(g, opt_level=None)
    assert compiled.report.kernel_names == ["fused_k_conv"] and compiled.report.scheduled == {"conv": 1}
    assert_close(run_reference(g, feeds), compiled.run(**feeds))


# ------------------------------------------------------------------ the table of multi-stage ops
def _intermediates(op: str) -> int:
    """Buffers a matmul + op group's built kernel still writes between its stages (the
    input reshape's is one): more means the packed write-back did not take ``op``."""
    from graphopt.codegen.build import prepare, schedule
    from graphopt.codegen.lower import lower
    from graphopt.codegen.target import as_target
    from graphopt.ir.function import outline
    from graphopt.ops import get_schema

    domain = "graphopt" if op.startswith("graphopt.") else ""
    name = op.split(".")[-1]
    g = Graph("g", {"": 21, "graphopt": 1})
    x = g.add_input("x", TensorType(F32, (2, 4, 16)))
    v = build(g, "MatMul", [x, _const(g, "w", (16, 16))], name="mm").output
    binary = get_schema(name, domain).traits.kind is PatternKind.BROADCAST
    v = build(g, name, [v, _const(g, "c", (16,))] if binary else [v], name="op", domain=domain).output
    g.outputs = [v]
    outline(g, list(g.nodes), "k")
    t = as_target("cpu")
    script = schedule(prepare(lower(g, target=t).mod, t.tvm), t)["fused_k"].script()
    return script.count("sblock_alloc_buffer(") - script.count('scope="local"')


PROBED = ["Relu", "Sigmoid", "Tanh", "Erf", "Exp", "Add", "Mul", "Div", "Clip", "HardSwish", "Gelu", "PRelu",
          "Sign", "Mod", "graphopt.SiLU", "graphopt.SwiGLU"]


@pytest.mark.parametrize("op", PROBED)
def test_multi_stage_table_matches_the_built_kernels(op):
    from graphopt.passes.group_kernels import MULTI_STAGE

    assert (_intermediates(op) > 1) == (op in MULTI_STAGE)


# ------------------------------------------------------------------ random chains, compiled
EPILOGUE_OPS = ["bias", "res", "scale", "cast", "Relu", "Sigmoid", "Tanh", "Neg", "Abs", "Gelu", "Exp", "Softsign"]


@settings(max_examples=examples(6), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(EPILOGUE_OPS), min_size=1, max_size=4), st.sampled_from(["mm2", "mm3", "gemm"]),
       st.booleans())
def test_random_chains_compile_to_the_oracles_numbers(ops, anchor, transposed):
    g = chain_graph(ops, rank=3 if anchor == "mm3" else 2, k=8, n=8, transposed_weight=transposed and anchor != "gemm",
                    gemm=anchor == "gemm")
    feeds = _feeds(g)
    want = run_reference(g, feeds)
    graphopt.run_passes(g, ["group-kernels"], verify_each=True)
    groups = _groups(g)
    stops = [i for i, op in enumerate(ops) if op == "Gelu"]
    assert len(groups) == (0 if stops and stops[0] == 0 else 1)
    assert_close(want, run_reference(g, feeds))
    compiled = graphopt.optimize(g, opt_level=None)
    assert all(f"fused_{grp.name}" in compiled.report.kernel_names for grp in groups)
    assert_close(want, compiled.run(**feeds))


def _gemm_view_graph(residual: bool = True) -> Graph:
    """GPT-2's Conv1D as exported: Reshape -> Gemm (bias) -> Reshape [-> residual Add]."""
    g = Graph("g", {"": 21})
    x = g.add_input("x", TensorType(F32, (1, 4, 16)))
    flat = build(g, "Reshape", [x, g.add_constant("s2", TensorData.from_numpy(np.array([4, 16], np.int64)))],
                 name="view").output
    v = build(g, "Gemm", [flat, _const(g, "w", (16, 16), 0.25), _const(g, "b", (16,))], name="gemm").output
    v = build(g, "Reshape", [v, g.add_constant("s3", TensorData.from_numpy(np.array([1, 4, 16], np.int64)))],
              name="view2").output
    g.outputs = [build(g, "Add", [v, x], name="res").output if residual else v]
    return g


def test_epilogue_goes_through_a_reshape_to_the_residual_add():
    g = _gemm_view_graph()
    feeds = _feeds(g)
    run_checked(g, ["group-kernels"], feeds)
    assert [n.qualified_op for n in g.nodes] == ["Reshape", "graphopt.FusedGroup"]
    assert _body_ops(g.nodes[1]) == ["Gemm", "Reshape", "Add"]
    compiled = graphopt.optimize(g, opt_level=None)
    assert "fused_k_gemm" in compiled.report.kernel_names and compiled.report.scheduled.get("dense") == 1
    assert_close(run_reference(g, feeds), compiled.run(**feeds))
    # a reshape with nothing elementwise after it stays out: no epilogue, no group
    g = _gemm_view_graph(residual=False)
    assert "%view2 is a graph output" in _explain(g) and not _groups(g)
