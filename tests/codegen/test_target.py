"""The CPU that code is compiled for: the host, or a smaller one forced with GRAPHOPT_CPU
(so an AVX-512 machine runs what an AVX2 machine would)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from graphopt.codegen.target import CPU_ENV, FORCED_CPUS, host_cpu

_PROBE = r"""
import numpy as np, onnx
from onnx import TensorProto, helper
import graphopt
from graphopt.codegen.target import host_cpu
m = helper.make_model(helper.make_graph(
    [helper.make_node("Relu", ["x"], ["y"])], "g",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, [64, 64])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, [64, 64])]),
    opset_imports=[helper.make_opsetid("", 21)])
cm = graphopt.optimize(m)
x = np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32)
assert np.array_equal(cm(x), np.maximum(x, 0))
asm = "".join(m.inspect_source("asm") for m in cm._executable.mod.imports if m.kind == "llvm")
print(host_cpu().mcpu, host_cpu().vector_lanes, "zmm" in asm, len(asm) > 0)
"""


def _run(env_cpu):
    env = {k: v for k, v in os.environ.items() if k != CPU_ENV}
    if env_cpu is not None:
        env[CPU_ENV] = env_cpu
    return subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, env=env, timeout=300)


def _host_has_avx512() -> bool:
    # The host's own flags, not host_cpu()'s (which a GRAPHOPT_CPU in the environment narrows).
    from graphopt.codegen.target import _host_flags

    return "avx512f" in _host_flags()


def test_forced_cpu_narrows_features_and_lanes():
    p = _run("x86-64-v3")
    assert p.returncode == 0, p.stderr[-2000:]
    mcpu, lanes, zmm, _ = p.stdout.split()
    assert mcpu == "x86-64-v3" and lanes == "8" and zmm == "False"


def test_host_cpu_uses_the_widest_unit():
    p = _run(None)
    assert p.returncode == 0, p.stderr[-2000:]
    _, lanes, zmm, have_asm = p.stdout.split()
    assert have_asm == "True"
    if _host_has_avx512():
        assert lanes == "16" and zmm == "True"
    else:
        assert lanes == "8" and zmm == "False"


def test_unknown_or_wider_cpu_is_refused():
    p = _run("pentium2")
    assert p.returncode != 0 and f"{CPU_ENV}='pentium2' is not a CPU graphopt can force" in p.stderr
    if not _host_has_avx512():
        p = _run("x86-64-v4")
        assert p.returncode != 0 and "this host lacks avx512f" in p.stderr


@pytest.mark.parametrize("name", sorted(FORCED_CPUS))
def test_forced_table_is_a_chain_of_levels(name):
    # Every forced CPU has what x86-64 has; the v-levels nest.
    assert FORCED_CPUS["x86-64"] <= FORCED_CPUS[name]
    assert FORCED_CPUS["x86-64-v2"] <= FORCED_CPUS["x86-64-v3"] <= FORCED_CPUS["x86-64-v4"]


def test_in_process_host_cpu_matches_environment():
    forced = os.environ.get(CPU_ENV)
    h = host_cpu()
    if forced:
        assert h.mcpu == forced
    assert h.vector_lanes in (4, 8, 16)
