"""A fast, fixed sample of onnx's node test suite through the graphopt stages, so CI sees
regressions. The full run is `graphopt conformance --json conformance.json` (README)."""

import pytest

from graphopt.conformance.runner import format_summary, run_conformance

# A fixed subset of ops, picked to cover the op families of the CNNs and transformers.
SAMPLE = (r"^test_(abs|add|add_bcast|relu|sigmoid|tanh|erf|exp|sqrt|neg|matmul_2d|matmul_3d|gemm_default_no_bias"
          r"|conv_with_strides_padding|maxpool_2d_pads|averagepool_2d_strides|globalaveragepool|softmax_axis_1"
          r"|reshape_reduced_dims|transpose_default|concat_2d_axis_0|split_equal_parts_1d_opset18|gather_0|slice"
          r"|unsqueeze_axis_0|squeeze|reduce_sum_keepdims_example|reduce_mean_default_axes_keepdims_example"
          r"|batchnorm_example|layer_normalization_2d_axis0|cast_FLOAT_to_INT64|where_example|expand_dim_changed"
          r"|shape|constantofshape_float_ones|flatten_axis1|pow|div|mul|sub|equal|less|clip_default_min)$")


@pytest.fixture(scope="module")
def report():
    # Every stage, always: a broken install must fail here, not shrink the sample.
    return run_conformance(SAMPLE, ["ort", "O0", "O1"], workers=2, timeout=120)


def test_sample_is_collected(report):
    assert report.collected >= 1800
    assert report.selected >= 40


def test_counts_add_up(report):
    for stage, c in report.counts().items():
        assert sum(c.values()) == report.selected, stage


def test_no_crash_or_mismatch_in_sample(report):
    print(format_summary(report))
    bad = [r for r in report.results if r.status in ("crash", "mismatch")]
    assert not bad, "\n".join(f"{r.stage} {r.case}: {r.status}: {r.detail}" for r in bad)


def test_graphopt_supports_the_sample(report):
    unsupported = [r for r in report.results if r.stage != "ort" and r.status == "unsupported"]
    assert not unsupported, "\n".join(f"{r.stage} {r.case}: {r.detail}" for r in unsupported)
