"""codegen.profile: each kernel of a scheduled module is timed with its call count and the
graphopt kernel it holds, found by its tag, not by its name (a FusedGroup's kernel is named
after its anchor node)."""

from __future__ import annotations

import numpy as np

from graphopt.codegen.build import prepare, schedule
from graphopt.codegen.kernels import tags
from graphopt.codegen.lower import lower
from graphopt.codegen.profile import profile_kernels
from graphopt.codegen.target import Target
from graphopt.ir import DType, Graph, TensorData, TensorType
from graphopt.ops import build
from graphopt.pipeline import lowering_pipeline, run_passes


def _model() -> Graph:
    """x @ W + b, then a Relu (the group) and a Softmax (a TVM kernel of its own)."""
    rng = np.random.default_rng(0)
    g = Graph("g", {"": 21})
    x = g.add_input("x", TensorType(DType.FLOAT32, (32, 64)))
    w = g.add_constant("w", TensorData.from_numpy(rng.standard_normal((64, 64)).astype(np.float32)))
    b = g.add_constant("b", TensorData.from_numpy(rng.standard_normal((64,)).astype(np.float32)))
    h = build(g, "MatMul", [x, w], name="mm").output
    h = build(g, "Add", [h, b], name="bias").output
    h = build(g, "Relu", [h], name="relu").output
    g.outputs = [build(g, "Softmax", [h], {"axis": -1}, name="sm").output]
    return g


def test_kernels_carry_the_graphopt_kernel_they_hold():
    target = Target.parse("cpu")
    g = run_passes(_model(), lowering_pipeline("O2"))
    mod = schedule(prepare(lower(g, target=target).mod, target.tvm), target)
    ks = {k.name: k for k in profile_kernels(mod, target.tvm, number=1)}
    dense = [k for k in ks.values() if k.kind == tags.DENSE]
    assert len(dense) == 1, ks
    assert tags.DENSE not in dense[0].name, "the group's kernel is named after its anchor, k_mm"
    assert dense[0].calls == 1 and dense[0].ms > 0
    assert sorted(k.kind for k in ks.values()) == ["", tags.DENSE], "the Softmax is TVM's own kernel"
