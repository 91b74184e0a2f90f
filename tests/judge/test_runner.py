"""run_one's verdicts for framework refusals, expected refusals and checks no output could fail."""
import numpy as np
import pytest

from harness.judge.runner import run_one
from testkit import load_case, register_plugins

CONV = """\
cases:
  - id: c
    layer: Conv2D
    input_shape: [1, 5, 5, 2]
    config: {filters: 2, kernel_size: 3}
"""


@pytest.fixture(scope="module", autouse=True)
def plugins():
    register_plugins("correct", "refusing", "crashing", "rich")


def test_refusal_is_rejected_not_failed(tmp_path):
    r = run_one(load_case(tmp_path, CONV), "refusing")
    assert r.verdict == "rejected", f"verdict={r.verdict}, but should be rejected [{r.message}]"
    assert "refused by this plug-in" in r.message


def test_expected_refusal_passes_and_unexpected_acceptance_fails(tmp_path):
    case = load_case(tmp_path, CONV + "    expect: {rejected_by: [refusing, correct]}\n")
    refused, accepted = run_one(case, "refusing"), run_one(case, "correct")
    assert refused.verdict == "pass", f"verdict={refused.verdict}, but should be pass [{refused.message}]"
    assert accepted.verdict == "fail", f"verdict={accepted.verdict}, but should be fail"
    assert "accepted the configuration, but should reject it (expect.rejected_by)" in accepted.message


def test_crash_is_an_error_with_its_traceback(tmp_path):
    r = run_one(load_case(tmp_path, CONV), "crashing")
    assert r.verdict == "error" and "RuntimeError: the port crashed" in r.message, r.message
    assert "Traceback" in r.details


def test_no_usable_bound_skips_before_the_engine_runs(tmp_path):
    # bfloat16, 3x3 kernel over 15 channels + bias: K = 136, gamma_K(2^-8) > 1: zeros would pass; the crashing
    # engine is never called.
    case = load_case(tmp_path, CONV.replace("[1, 5, 5, 2]", "[1, 5, 5, 15]") + "    dtype: bfloat16\n")
    r = run_one(case, "crashing")
    assert r.verdict == "skip", f"verdict={r.verdict}, but should be skip [{r.message}]"
    assert "no usable error bound for K=136" in r.message, r.message


def test_small_bfloat16_reduction_still_checked(tmp_path):
    case = load_case(tmp_path, CONV + "    dtype: bfloat16\n")   # K = 3*3*2 + 1 = 19
    r = run_one(case, "correct")
    assert r.verdict == "pass" and r.metrics is not None and np.isfinite(r.metrics.max_ratio), r.message


def test_a_plugin_returning_an_engine_output_keeps_everything_it_reports(tmp_path):
    case = load_case(tmp_path, CONV + "    expect: {params: 38}\n")
    r = run_one(case, "rich")
    assert r.verdict == "pass", f"verdict={r.verdict} ({r.message}), but should be pass"
    assert r.params == 38, f"params={r.params}, but should be 38 (3*3*2*2 + 2)"
    assert r.weight_shapes == {"kernel": (3, 3, 2, 2), "bias": (2,)}, f"weight_shapes={r.weight_shapes}"
    assert r.notes == ["converted by the rich plug-in"] and r.facts == {"rich": True}, (r.notes, r.facts)
    wrong = load_case(tmp_path, CONV + "    expect: {params: 39}\n")
    r = run_one(wrong, "rich")
    assert r.verdict == "fail" and "params=38, but should be 39" in r.message, r.message
