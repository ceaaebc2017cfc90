"""-O1 on the light CNNs shipped with onnx: it shrinks them (their ConstantOfShape-built
weights and shape computations fold away), verifies after every pass, and keeps the
numbers: on the models as shipped (check-numerics after every pass) and, since those give
equal logits, on randomized weights, comparing logits. squeezenet and shufflenet run by
default; all nine under ``-m slow``."""

from __future__ import annotations

from collections import Counter

import pytest

import graphopt
from graphopt.pipeline import run_pipeline
from graphopt.testing import assert_close, run_reference
from graphopt.testing.models import LIGHT_MODELS, light_model_inputs, light_model_path, randomized_light_model

DEFAULT = ["squeezenet", "shufflenet"]
PARAMS = [pytest.param(m, marks=() if m in DEFAULT else pytest.mark.slow) for m in LIGHT_MODELS]
# The three giant FC weights (over fold-constants' default limit of 2**24 elements) stay ConstantOfShape.
BIG_WEIGHTS = {"bvlc_alexnet": 1, "vgg19": 1, "zfnet512": 1}


@pytest.mark.parametrize("name", PARAMS)
def test_o1_shrinks_shipped_model(name, tmp_path):
    g = graphopt.import_onnx(light_model_path(name))
    before = len(g.nodes)
    run = run_pipeline(g, "O1", verify_each=True, check_numerics=True, time_passes=False,
                       dump_ir="after-change", dump_dir=tmp_path)
    ops = Counter(n.op_type for n in g.nodes)
    assert len(g.nodes) < before
    assert ops.get("ConstantOfShape", 0) == BIG_WEIGHTS.get(name, 0)
    for op in ("Shape", "Gather", "Dropout", "Identity", "Unsqueeze"):
        assert op not in ops
    assert run.numerics.checks >= 1
    # the dumps parse back
    for p in sorted(tmp_path.glob("*.ir"))[:3]:
        assert graphopt.print_ir(graphopt.parse_ir(p.read_text())) == p.read_text()


@pytest.mark.parametrize("name", PARAMS)
def test_o1_keeps_logits_of_randomized_model(name):
    model = randomized_light_model(name, seed=0)
    feeds = light_model_inputs(model, seed=0)
    g = graphopt.import_onnx(model)
    expected = run_reference(g, feeds)
    run_pipeline(g, "O1", verify_each=True)
    assert_close(expected, run_reference(g, feeds))
