"""A real exported transformer with a symbolic sequence length (tiny BERT, traced with
``Dim("seq")``): after specialize-shapes{dims=seq:N} and -O1 no Shape node is left and every
value's type is static; compiled with ``dims=``, it matches the oracle run on the symbolic
graph."""

import numpy as np
import torch

import graphopt
from graphopt.ir import DType
from graphopt.pipeline import clone_graph, run_pipeline
from graphopt.testing import TOLERANCES, run_reference
from graphopt.testing.families import VOCAB, bert

SEQ = 8
TOL = TOLERANCES[DType.FLOAT32]


def _symbolic(g) -> list[str]:
    out = [f"%{v.name}: {v.type}" for v in g.inputs if not v.type.is_static]
    out += [f"%{o.name}: {o.type}" for n in g.walk() for o in n.outputs if o is not None and not o.type.is_static]
    return out


def test_bert_with_a_bound_sequence_length_is_static_and_matches_the_oracle():
    built = bert()
    example = torch.randint(3, VOCAB, (1, 16), generator=torch.Generator().manual_seed(1))
    g = graphopt.trace(built.module, (example,), dynamic_shapes=({1: torch.export.Dim("seq", min=2, max=64)},))
    assert [str(v.type) for v in g.inputs] == ["i64[1, seq]"]
    assert any(n.op_type == "Shape" for n in g.walk()) and _symbolic(g)
    original = clone_graph(g)

    run = run_pipeline(g, f"specialize-shapes{{dims=seq:{SEQ}}}", verify_each=True)
    assert run.records[0].changed
    run_pipeline(g, "O1", verify_each=True)
    assert not any(n.op_type == "Shape" for n in g.walk())
    assert _symbolic(g) == []
    again = run_pipeline(g, f"specialize-shapes{{dims=seq:{SEQ}}}", verify_each=True)
    assert not again.records[0].changed

    ids = torch.randint(3, VOCAB, (1, SEQ), generator=torch.Generator().manual_seed(2)).numpy()
    expected = run_reference(original, {"input_ids": ids})
    compiled = graphopt.optimize(original, dims={"seq": SEQ}, opt_level="O1")
    assert compiled.manifest["inputs"][0]["shape"] == [1, SEQ]
    for e, a in zip(expected, compiled.run(input_ids=ids)):
        np.testing.assert_allclose(a, e, rtol=TOL.rtol, atol=TOL.atol)


class _Flatten(torch.nn.Module):
    def forward(self, x):
        return torch.relu(x.reshape(x.shape[0], -1)) * x.shape[1]


def test_optimize_module_with_dims_compiles_for_the_bound_size():
    x = torch.randn(3, 4, 5)
    fast = graphopt.optimize(_Flatten(), (x,), dynamic_shapes=({0: torch.export.Dim("batch"), 1: torch.export.Dim("n")},),
                             dims={"batch": 2, "n": 4}, opt_level="O1")
    assert fast.compiled.manifest["inputs"][0]["shape"] == [2, 4, 5]
    y = torch.randn(2, 4, 5)
    np.testing.assert_allclose(fast(y).numpy(), _Flatten()(y).numpy(), rtol=TOL.rtol, atol=TOL.atol)
