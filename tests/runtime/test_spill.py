"""A compiled model keeps its graph as ONNX (for save and compare-intermediates) in a
private temporary file, not in memory: it saves and loads, reads back, and the file goes
away with the model."""

from __future__ import annotations

import gc
import os

import numpy as np
import onnx

import graphopt
from graphopt.codegen import artifact
from graphopt.ir import DType, Graph, TensorData, TensorType
from graphopt.ops import build
from graphopt.util.spill import SpilledBytes


def _graph() -> Graph:
    g = Graph("g", {"": 21})
    x = g.add_input("x", TensorType(DType.FLOAT32, (4, 64)))
    w = g.add_constant("w", TensorData.from_numpy(np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32)))
    g.outputs = [build(g, "Relu", [build(g, "MatMul", [x, w], name="mm").output], name="relu").output]
    return g


def test_the_compiled_graph_waits_on_disk_and_goes_with_the_model(tmp_path):
    m = graphopt.optimize(_graph())
    spilled = m._files[artifact.ORACLE]
    assert isinstance(spilled, SpilledBytes) and os.path.isfile(spilled.path)
    path = spilled.path
    onnx.checker.check_model(onnx.load_from_string(m.payload(artifact.ORACLE)))
    m.save(tmp_path / "a")
    loaded = graphopt.load(tmp_path / "a")
    assert loaded.payload(artifact.ORACLE) == (tmp_path / "a" / artifact.ORACLE).read_bytes()
    lpath = loaded._files[artifact.ORACLE].path
    (tmp_path / "a" / artifact.ORACLE).unlink()  # the loaded model keeps its own copy
    assert loaded.payload(artifact.ORACLE) == m.payload(artifact.ORACLE)
    del m, spilled, loaded
    gc.collect()
    assert not os.path.exists(path) and not os.path.exists(lpath)
