"""Diagnosis: a disagreeing engine's failure message names the known mistake that reproduces its output."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness import engines
from harness.detection import diagnose, mutants, score
from harness.engines.base import EngineOutput
from harness.runner import reference, run_one
from harness.schema import load_file, load_paths

CASES = Path(__file__).resolve().parent.parent / "cases"

SEPARABLE = """\
cases:
  - id: sep
    layer: SeparableConv2D
    input_shape: [2, 6, 5, 3]
    config: {filters: 4, kernel_size: 3, depth_multiplier: 2, padding: same}
  - id: conv
    layer: Conv2D
    input_shape: [2, 6, 5, 3]
    config: {filters: 4, kernel_size: [3, 2], padding: same}
"""


@pytest.fixture
def small_cases(tmp_path):
    path = tmp_path / "small.yaml"
    path.write_text(SEPARABLE)
    cases, errors = load_file(path)
    assert not errors
    return {c.id: c for c in cases}


def test_each_mutant_is_diagnosed_as_itself_on_the_case_that_kills_it():
    cases, _ = load_paths([CASES])
    s = score.sweep(cases, first_only=True)
    by_id = {c.id: c for c in cases}
    for name in s.mutants:
        killer = by_id[s.killers[name][0]]
        r = run_one(killer, name)
        assert r.verdict == "fail"
        assert f"[mutant {name}]" in r.message, f"diagnosis={r.message!r}, but should name mutant {name}"


def test_a_separately_written_flipped_port_is_named(small_cases):
    # tests/plugins_for_tests.py:flipped is independent of the catalogue (its own np.flip of the kernels).
    name = engines.register_plugin("test_flipped=plugins_for_tests:flipped")
    r = run_one(small_cases["conv"], name)
    assert r.verdict == "fail"
    assert "matches the oracle with the kernel flipped: true convolution instead of cross-correlation" in r.message


def _output(case, fn):
    """An EngineOutput from fn(y_oracle) in the case dtype (a hand-written wrong engine)."""
    ref = reference(case)
    return ref, EngineOutput(y=fn(ref.y.copy()).astype(np.float32))


def test_permuted_channels_are_named(small_cases):
    case = small_cases["conv"]
    ref, out = _output(case, lambda y: y[..., ::-1])
    text = diagnose.explain(case, "wrong", out, ref)
    assert "output channels are permuted" in text and "0<-3" in text, text


def test_a_constant_per_channel_offset_is_named_a_bias_mistake(small_cases):
    case = small_cases["conv"]
    ref, out = _output(case, lambda y: y + np.array([0.5, -1.0, 0.25, 2.0]))
    assert "constant per output channel: a bias mistake" in diagnose.explain(case, "wrong", out, ref)


def test_no_diagnosis_for_an_unknown_mistake(small_cases):
    case = small_cases["conv"]
    ref, out = _output(case, lambda y: y * 1.5)
    assert diagnose.explain(case, "wrong", out, ref) == ""


def _staged(case, mutant):
    """What an engine exposing its depthwise stage would return if it made ``mutant``'s mistake."""
    ref = reference(case)
    y, z = mutants.MUTANTS[mutant].stages(case.layer, case.config, ref.inputs.x64, ref.inputs.weights64, case.dtype)
    return ref, EngineOutput(y=y.astype(np.float32), intermediate={"depthwise": z.astype(np.float32)})


def test_separable_stage_that_went_wrong_is_named(small_cases):
    case = small_cases["sep"]
    ref, out = _staged(case, "pointwise_not_transposed")
    text = diagnose.explain(case, "wrong", out, ref)
    assert "the depthwise stage agrees with the oracle" in text and "pointwise step" in text, text
    ref, out = _staged(case, "flipped_kernel")
    text = diagnose.explain(case, "wrong", out, ref)
    assert "the depthwise stage already disagrees" in text, text
    assert "matches the oracle's with the kernel flipped" in text, text


def test_torch_exposes_a_correct_depthwise_stage(small_cases, tmp_path):
    case = small_cases["sep"]
    r = run_one(case, "torch")
    assert r.verdict == "pass", r.message
    z = r.output.intermediate["depthwise"]
    assert z.shape == (2, 6, 5, 6) and z.dtype == np.float32
    assert diagnose.stage_verdicts(case, r.output, reference(case).inputs.x64,
                                    reference(case).inputs.weights64).startswith("the depthwise stage agrees")
    # The hand-written block with a depthwise bias: its stage carries b_d, which diagnosis accounts for.
    path = tmp_path / "bias.yaml"
    path.write_text(SEPARABLE.replace("padding: same}", "padding: same}\n    engine_options: {torch: {depthwise_bias: true}}", 1))
    biased = load_file(path)[0][0]
    r = run_one(biased, "torch")
    assert r.verdict == "pass", r.message
    assert "depthwise_bias" in r.output.intermediate
    ref = reference(biased)
    assert diagnose.stage_verdicts(biased, r.output, ref.inputs.x64, ref.inputs.weights64).startswith(
        "the depthwise stage agrees")


def test_suppressed_diagnosis_and_never_for_the_oracle(small_cases):
    case = small_cases["conv"]
    ref, out = _output(case, lambda y: y[..., ::-1])
    with diagnose.suppressed():
        assert diagnose.explain(case, "wrong", out, ref) == ""
    assert diagnose.explain(case, "oracle", out, ref) == ""
