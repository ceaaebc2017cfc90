"""Indices given at run time are checked once per call: an out-of-range index is a clean
IndexRangeError naming the node (a GraphoptError), never a read or write outside the
buffer. TVM's gathers do not check: a compiled nn.Embedding(10, 4) called with index
100000000 killed the Python process. Bad calls run in a subprocess, so that a segfault
fails the test instead of killing pytest. Negative indices in range keep working (they
count from the end)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from codegen_testutil import check_against_oracle
from test_lowering_extra import N, make_graph

X = np.arange(40, dtype=np.float32).reshape(10, 4)


def _cases():
    """(name, nodes, inputs, outputs, consts, bad inputs, node name)."""
    i64 = np.int64
    return [
        ("gather", [N("Gather", ["x", "i"], ["y"], name="embed")], dict(x=X, i=i64([[1, -1, 9]])), {},
         dict(i=i64([[1, 100000000, 2]])), "embed"),
        ("gather_neg", [N("Gather", ["x", "i"], ["y"], axis=1, name="cols")], dict(x=X, i=i64([0, -4, 3])), {},
         dict(i=i64([0, -5, 3])), "cols"),
        ("gather_elements", [N("GatherElements", ["x", "i"], ["y"], axis=0, name="ge")],
         dict(x=X, i=i64([[0, 9, -1, 2]])), {}, dict(i=i64([[0, 10, 1, 2]])), "ge"),
        ("gather_nd", [N("GatherND", ["x", "i"], ["y"], name="gnd")], dict(x=X, i=i64([[9, 3], [-1, -4]])), {},
         dict(i=i64([[9, 4], [0, 0]])), "gnd"),
        ("scatter_nd", [N("ScatterND", ["x", "i", "u"], ["y"], name="snd")],
         dict(x=X, i=i64([[2], [-1]]), u=np.ones((2, 4), np.float32)), {},
         dict(i=i64([[2], [-11]])), "snd"),
        ("scatter_elements", [N("ScatterElements", ["x", "i", "u"], ["y"], axis=1, name="se")],
         dict(x=X, i=i64([[0, -1]] * 10), u=np.ones((10, 2), np.float32)), {},
         dict(i=i64([[0, 1]] * 9 + [[0, 1 << 40]])), "se"),
        ("max_unpool", [N("MaxUnpool", ["x", "i"], ["y"], kernel_shape=[2, 2], strides=[2, 2], name="unpool")],
         dict(x=X[:4].reshape(1, 1, 4, 4), i=i64([0, 3, 6, 9, 17, 18, 23, 28, 33, 38, 40, 47, 48, 53, 58, 63]).reshape(1, 1, 4, 4)),
         {}, dict(i=i64([0, 3, 6, 9, 17, 18, 23, 28, 33, 38, 40, 47, 48, 53, 58, 1000]).reshape(1, 1, 4, 4)), "unpool"),
    ]


CASES = _cases()


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_in_range_indices_match_oracle(case):
    _, nodes, inputs, consts, _, _ = case
    g = make_graph(nodes, inputs, ["y"], consts)
    check_against_oracle(g, inputs)


_CHILD = textwrap.dedent("""
    import pickle, sys
    import numpy as np
    sys.path.insert(0, {testdir!r})
    from test_index_bounds import CASES
    from test_lowering_extra import make_graph
    from codegen_testutil import compile_graph
    from graphopt.errors import GraphoptError
    name, nodes, inputs, consts, bad, node = [c for c in CASES if c[0] == {name!r}][0]
    model = compile_graph(make_graph(nodes, inputs, ["y"], consts))
    model.run(**inputs)
    feeds = dict(inputs, **bad)
    try:
        model.run(**feeds)
    except GraphoptError as e:
        print("CLEAN", type(e).__name__, str(e))
        model.run(**inputs)  # the model still works after the refusal
        print("STILL OK")
    else:
        print("ACCEPTED")
""")


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_out_of_range_index_is_a_clean_error(case):
    import os

    name, node = case[0], case[5]
    testdir = os.path.dirname(__file__)
    code = _CHILD.format(testdir=testdir, name=name)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=testdir)
    assert r.returncode == 0, f"the child died (rc {r.returncode}): {r.stderr[-2000:]}"
    out = r.stdout
    assert "CLEAN IndexRangeError" in out, out + r.stderr[-2000:]
    assert repr(node) in out and "out of range" in out
    assert "STILL OK" in out

