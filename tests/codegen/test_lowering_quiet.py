"""TVM's native log lines (C++ LOG(WARNING) on fd 2, which Python's warnings filter does
not see) stay off the user's terminal unless asked for (--debug sets GRAPHOPT_DEBUG;
GRAPHOPT_NATIVE_LOG=1): the gather's "Fast mode segfaults when there are out-of-bounds
indices", "BlockBuilder destroyed with remaining blocks" after a failed lowering, the VM's
"Scope Saving"."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

NATIVE = ("Fast mode", "BlockBuilder destroyed", "Scope Saving", "Scope Loaded")


def _embedding_model(path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((10, 4)).astype(np.float32), "w")
    g = helper.make_graph([helper.make_node("Gather", ["w", "i"], ["e"], name="embed"),
                           helper.make_node("Relu", ["e"], ["y"])], "emb",
                          [helper.make_tensor_value_info("i", TensorProto.INT64, [2, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3, 4])], [w])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)], ir_version=10), str(path))
    return path


def _compile(tmp_path, **env):
    model = _embedding_model(tmp_path / "emb.onnx")
    cli = os.path.join(os.path.dirname(sys.executable), "graphopt")
    e = {k: v for k, v in os.environ.items() if k not in ("GRAPHOPT_DEBUG", "GRAPHOPT_NATIVE_LOG")}
    e.update(env)
    return subprocess.run([cli, "compile", str(model), "-o", str(tmp_path / "out")], capture_output=True, text=True,
                          timeout=600, env=e)


def test_compile_shows_native_log_only_when_asked(tmp_path):
    r = _compile(tmp_path, GRAPHOPT_NATIVE_LOG="1")
    assert r.returncode == 0, r.stderr
    assert "Fast mode" in r.stderr  # the lines exist: the quiet run below can fail
    (tmp_path / "again").mkdir()
    r = _compile(tmp_path / "again")
    assert r.returncode == 0, r.stderr
    noisy = [ln for ln in r.stderr.splitlines() if any(k in ln for k in NATIVE[:2])]
    assert not noisy, noisy


def test_compile_prints_no_scope_saving(tmp_path):
    r = _compile(tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Scope Saving" not in r.stderr, r.stderr


def test_failed_lowering_leaves_no_blockbuilder_warning():
    code = textwrap.dedent("""
        import gc, sys
        sys.path.insert(0, {d!r})
        import test_lowering as T
        from graphopt.codegen.lower import lower, registry
        registry.TABLE["Relu"] = lambda ctx, n: 1 / 0
        try:
            lower(T._relu_chain())
        except Exception as e:
            print(type(e).__name__)
        gc.collect()
    """).format(d=os.path.dirname(__file__))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.stdout.strip() == "InternalError", r.stdout + r.stderr
    assert "BlockBuilder" not in r.stderr, r.stderr


def test_native_output_keeps_other_stderr_lines(capfd):
    from graphopt.codegen.build import native_output

    with native_output():
        os.write(2, b"[23:41:25] /project/src/x.cc:1: Warning: noise\nreal message\n")
    err = capfd.readouterr().err
    assert "real message" in err and "noise" not in err
