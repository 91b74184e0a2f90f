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


# ---------------------------------------------------------------- failure classes converters show

from harness.detection import causes  # noqa: E402
from harness.tensors import round_to  # noqa: E402
from harness import oracle  # noqa: E402

CONVERTER_CASES = """\
cases:
  - id: c1-same
    layer: Conv1D
    input_shape: [1, 10, 2]
    config: {filters: 2, kernel_size: 4, padding: same}
  - id: c64
    layer: Conv2D
    input_shape: [2, 6, 5, 3]
    dtype: float64
    config: {filters: 4, kernel_size: 3}
"""


@pytest.fixture
def converter_cases(tmp_path):
    path = tmp_path / "converters.yaml"
    path.write_text(CONVERTER_CASES)
    cases, errors = load_file(path)
    assert not errors
    return {c.id: c for c in cases}


def _in_precision(case, p, round_output=True):
    """The layer computed from inputs and weights rounded to ``p`` (and its output too), returned in float32."""
    ref = reference(case)
    x = round_to(ref.inputs.x64, p).astype(np.float64)
    w = {k: round_to(v, p).astype(np.float64) for k, v in ref.inputs.weights64.items()}
    y = oracle.run(case.layer, case.config, x, w)
    return ref, EngineOutput(y=(round_to(y, p) if round_output else y).astype(np.float32))


@pytest.mark.parametrize("precision", ["bfloat16", "float16"])
def test_a_float32_layer_computed_in_a_narrower_precision_is_named(small_cases, precision):
    case = small_cases["conv"]
    ref, out = _in_precision(case, precision)
    text = diagnose.explain(case, "wrong", out, ref)
    assert text.startswith(f"computed internally in {precision}: the output matches the oracle's on inputs and "
                           f"weights rounded to {precision}, within {precision}'s bound"), text
    assert f"every output value is a {precision} number" in text, text


def test_inputs_rounded_to_a_narrower_precision_and_accumulated_in_float32_are_named(small_cases):
    case = small_cases["conv"]
    ref, out = _in_precision(case, "bfloat16", round_output=False)
    text = diagnose.explain(case, "wrong", out, ref)
    assert text.startswith("computed internally in bfloat16 (inputs and weights rounded to it, accumulated in "
                           "float32)"), text


def _ops_in(case, p, inner, outer, bias_dtype="float32"):
    """OpenVINO's bfloat16 inference as measured: input and kernels rounded to ``p``, the intermediate stage's
    output (``inner``) and the last convolution's (``outer``) rounded to it or not, then the bias and activation
    in float32."""
    ref = reference(case)
    g = case.geometry
    rnd = (lambda a: round_to(a, p).astype(np.float64))
    x = oracle.to_channels_last(rnd(ref.inputs.x64), g.channels_first)
    w = {k: rnd(v) for k, v in ref.inputs.weights64.items() if k != "bias"}
    keep = (lambda a: a)
    pre = g.kind.family.forward_rounded(x, w, g, rnd if inner else keep, rnd if outer else keep)
    pre = pre + round_to(ref.inputs.weights64["bias"], bias_dtype).astype(np.float64)
    return ref, EngineOutput(y=oracle.from_channels_last(pre, g.channels_first).astype(np.float32))


@pytest.mark.parametrize("inner,outer,said", [
    (True, True, "every convolution's input, kernel and output rounded to bfloat16, bias and activation applied "
                 "after in float32"),
    (True, False, "inputs, kernels and the intermediate stage's output rounded to bfloat16, the last convolution "
                  "accumulated in float32"),
    (False, False, "inputs and kernels rounded to it, accumulated in float32, bias and activation applied after in "
                   "float32"),
])
def test_convolutions_in_bfloat16_with_the_bias_in_float32_are_named(small_cases, inner, outer, said):
    # What OpenVINO's CPU plugin does by default on CPUs with AVX512_BF16 (the scoreboard's 'openvino' row): the
    # bias add stays a float32 op, so the output is no bfloat16 number and the plain precision check misses it.
    ref, out = _ops_in(small_cases["sep"], "bfloat16", inner, outer)
    text = diagnose.explain(small_cases["sep"], "wrong", out, ref)
    assert text.startswith("computed internally in bfloat16 (") and said in text, text


def test_padding_on_the_batch_axis_is_named_with_the_axes_that_differ(converter_cases):
    # onnx2tf's F.pad on the wrong axes: Conv1D same, output (4, 7, 2) for input (1, 10, 2).
    case = converter_cases["c1-same"]
    ref = reference(case)
    text = diagnose.explain(case, "wrong", EngineOutput(y=np.zeros((4, 7, 2), np.float32)), ref)
    assert text.startswith("padding applied on the wrong axes: the spatial axes are as if unpadded ('valid': "
                           "steps 7) while batch grew by 3 (the padding total)"), text
    assert "the batch and steps axes differ: batch 4 instead of 1 (+3), steps 7 instead of 10 (-3)" in text, text


def test_shape_failures_name_the_axis_and_the_pattern(converter_cases):
    case = converter_cases["c1-same"]
    ref = reference(case)
    y = ref.y.astype(np.float32)
    said = {shape: diagnose.explain(case, "wrong", EngineOutput(y=value), ref) for shape, value in (
        ("lost", y[0]), ("layout", np.ascontiguousarray(np.moveaxis(y, -1, 1))),
        ("other", np.zeros((1, 9, 2), np.float32)))}
    assert said["lost"].startswith("the batch axis was lost: the output has one sample's shape (10, 2) instead "
                                   "of (1, 10, 2)"), said["lost"]
    assert said["layout"].startswith("the output is channels_first where channels_last is expected"), said["layout"]
    assert said["other"] == "the steps axis differs: steps 9 instead of 10 (-1)", said["other"]


def test_a_dtype_silently_changed_says_whether_the_values_agree_in_the_narrower_dtype(converter_cases):
    case = converter_cases["c64"]
    ref = reference(case)
    right = diagnose.explain(case, "wrong", EngineOutput(y=ref.y.astype(np.float32)), ref)
    assert right.startswith("the dtype silently changed to float32 (the case is float64): its values agree with "
                            "the oracle within float32's bound"), right
    assert right.endswith("computed in float32"), right
    wrong = diagnose.explain(case, "wrong", EngineOutput(y=(ref.y * 1.5).astype(np.float32)), ref)
    assert wrong.startswith("the dtype silently changed to float32 (the case is float64): its values disagree even "
                            "within float32's bound"), wrong


def float32_out(layer, config, x, weights):
    """A converter that always builds float32 (nobuco, OpenVINO on float64)."""
    y = oracle.run(layer, config, x.astype(np.float64), {k: v.astype(np.float64) for k, v in weights.items()})
    return y.astype(np.float32)


def invalid_graph(layer, config, x, weights):
    """onnxruntime refusing what tf2onnx wrote for a grouped conv."""
    raise RuntimeError("[ONNXRuntimeError] : 10 : INVALID_GRAPH : Load model from /tmp/m.onnx failed:This is an "
                       "invalid model. In Node, (\"\", StatefulPartitionedCall, \"\", -1) : error: No Op registered "
                       "for StatefulPartitionedCall with domain_version of 13")


def test_the_dtype_failure_and_the_error_of_a_run_carry_their_cause(converter_cases):
    diagnose.install()
    f32 = engines.register_plugin(f"float32_out={__name__}:float32_out")
    bad = engines.register_plugin(f"invalid_graph={__name__}:invalid_graph")
    r = run_one(converter_cases["c64"], f32)
    assert r.verdict == "fail" and "output dtype=float32, but should be float64" in r.message, r.message
    assert "; diagnosis: the dtype silently changed to float32 (the case is float64): its values agree" in r.message
    r = run_one(converter_cases["c64"], bad)
    assert r.verdict == "error", r.message
    assert "; cause: the exported graph is invalid: the runtime refused to load what the converter wrote" in r.message
    assert r.message.endswith("the graph holds an op the runtime does not know: StatefulPartitionedCall"), r.message


@pytest.mark.parametrize("outcome, message, xfail, label", [
    ("fail", "e: output shape=(4, 7, 2), but should be (1, 10, 2) [c.yaml::c]; diagnosis: padding applied on the "
             "wrong axes: the spatial axes ...; the batch axis differs: ...", "", "padding applied on the wrong axes"),
    ("fail", "e: max error/bound 3 at (0,): 1 vs 2 oracle [c.yaml::c]; diagnosis: computed internally in bfloat16: "
             "the output ... (max error/bound 0.03)", "", "computed internally in bfloat16"),
    ("fail", "e: max error/bound 3 [c.yaml::c]; diagnosis: matches the oracle with the kernel flipped: true "
             "convolution instead of cross-correlation [mutant flipped_kernel] (or x [mutant y])", "",
     "matches the oracle with the kernel flipped [mutant flipped_kernel]"),
    ("fail", "e: output dtype=float32, but should be float64 [c.yaml::c]; diagnosis: the dtype silently changed "
             "to float32 (the case is float64): its values agree", "", "the dtype silently changed to float32"),
    ("error", "e: RuntimeError: [ONNXRuntimeError] : 10 : INVALID_GRAPH [c.yaml::c]; cause: the exported graph is "
              "invalid: the runtime refused", "", "the exported graph is invalid"),
    ("error", "e: KeyError: 'x' [c.yaml::c]", "", "error: KeyError"),
    ("error", "onnx2tf: RuntimeError: TypeError: Expected tensor [[1]] [c.yaml::c]", "",
     "error: TypeError in the converter"),
    ("error", "e: RuntimeError: not an exception name: x [c.yaml::c]", "", "error: RuntimeError"),
    ("fail", "e: max error/bound 3 at (0,) [c.yaml::c]", "", "wrong values (no known cause)"),
    ("xfail", "whatever", "keras-bias-add-guessed-nhwc: keras.ops.add ...", "known bug: keras-bias-add-guessed-nhwc"),
    ("xfail", "whatever", "inherited from keras: keras-bias-add-guessed-nhwc",
     "inherited from keras: keras-bias-add-guessed-nhwc"),
])
def test_a_cause_label_is_short_and_stable(outcome, message, xfail, label):
    assert causes.label(outcome, message, xfail) == label


def test_bfloat16_on_constant_data_is_named_a_precision_not_a_bias_mistake():
    # OpenVINO on a CPU with AVX512_BF16: Conv2D rgb-ones gives 40448 (a bfloat16 number) for 40404 everywhere,
    # one constant per channel, which a bias mistake would give too.
    cases, _ = load_paths([CASES])
    case = next(c for c in cases if c.id == "rgb-ones-conv2d")
    ref, out = _in_precision(case, "bfloat16")
    assert float(out.y.flat[0]) == 40448.0 and float(ref.y.flat[0]) == 40404.0, (out.y.flat[0], ref.y.flat[0])
    assert diagnose.explain(case, "wrong", out, ref).startswith("computed internally in bfloat16: "), out.y


def test_a_bias_offset_on_small_integer_data_is_no_precision_problem(tmp_path):
    path = tmp_path / "ints.yaml"
    path.write_text("cases:\n  - id: ints\n    layer: Conv2D\n    input_shape: [1, 4, 4, 2]\n"
                    "    config: {filters: 2, kernel_size: 2}\n    input: ones\n"
                    "    weights: {kernel: ones, bias: ones}\n")
    case = load_file(path)[0][0]
    ref, out = _output(case, lambda y: y + 1.0)   # the bias added twice: 10 instead of 9, a bfloat16 number too
    assert diagnose.explain(case, "wrong", out, ref).startswith("off by a constant per output channel"), out.y
