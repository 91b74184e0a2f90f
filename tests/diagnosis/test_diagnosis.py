"""Diagnosis: a disagreeing engine's failure message names the known mistake that reproduces its output."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness import engines
from harness.diagnosis import diagnose
from harness.mutation import mutants, score
from harness.engines.base import EngineOutput
from harness.judge.findings import Finding
from harness.judge.runner import Result, reference, run_one
from harness.cases.schema import load_paths
from testkit import CASES, load_case, load_cases

DIAGNOSER = diagnose.Diagnoser()


def sentences(findings) -> str:
    """The findings' sentences as a message renders them (harness.judge.findings.render, without its head)."""
    return "; ".join(f.text for f in findings)

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
    return {c.id: c for c in load_cases(tmp_path, SEPARABLE, "small.yaml")}


def test_each_mutant_is_diagnosed_as_itself_on_the_case_that_kills_it():
    cases, _ = load_paths([CASES])
    s = score.sweep(cases, first_only=True)
    by_id = {c.id: c for c in cases}
    for name in s.mutants:
        killer = by_id[s.killers[name][0]]
        r = run_one(killer, name, diagnoser=DIAGNOSER)
        assert r.verdict == "fail"
        assert f"[mutant {name}]" in r.message, f"diagnosis={r.message!r}, but should name mutant {name}"


def test_a_separately_written_flipped_port_is_named(small_cases):
    # tests/plugins_for_tests.py:flipped is independent of the catalogue (its own np.flip of the kernels).
    name = engines.register_plugin("test_flipped=plugins_for_tests:flipped")
    r = run_one(small_cases["conv"], name, diagnoser=DIAGNOSER)
    assert r.verdict == "fail"
    assert "matches the oracle with the kernel flipped: true convolution instead of cross-correlation" in r.message
    # The finding is data: what decided, and what reproduces it, read from fields, not from the message.
    assert r.decided_by == "values", r.decided_by
    assert (r.findings[0].kind, r.findings[0].id) == ("mutant", "flipped_kernel"), r.findings
    assert r.message == r.headline + "; diagnosis: " + sentences(r.findings), r.message


def test_without_a_diagnoser_a_failure_has_no_findings(small_cases):
    name = engines.register_plugin("test_flipped=plugins_for_tests:flipped")
    r = run_one(small_cases["conv"], name)   # diagnoser=None: the mutation sweep's way
    assert (r.verdict, r.decided_by, r.findings) == ("fail", "values", []), (r.verdict, r.decided_by, r.findings)
    assert "diagnosis" not in r.message and r.message == r.headline, r.message


def _output(case, fn):
    """An EngineOutput from fn(y_oracle) in the case dtype (a hand-written wrong engine)."""
    ref = reference(case)
    return ref, EngineOutput(y=fn(ref.y.copy()).astype(np.float32))


def test_permuted_channels_are_named(small_cases):
    case = small_cases["conv"]
    ref, out = _output(case, lambda y: y[..., ::-1])
    found = diagnose.explain(case, "wrong", out, ref)
    text = sentences(found)
    assert "output channels are permuted" in text and "0<-3" in text, text
    assert found[0].key == "pattern:permuted-channels" and found[0].evidence["permutation"] == [3, 2, 1, 0], found


def test_a_constant_per_channel_offset_is_named_a_bias_mistake(small_cases):
    case = small_cases["conv"]
    ref, out = _output(case, lambda y: y + np.array([0.5, -1.0, 0.25, 2.0]))
    assert "constant per output channel: a bias mistake" in sentences(diagnose.explain(case, "wrong", out, ref))


def test_no_diagnosis_for_an_unknown_mistake(small_cases):
    case = small_cases["conv"]
    ref, out = _output(case, lambda y: y * 1.5)
    assert diagnose.explain(case, "wrong", out, ref) == []


def _staged(case, mutant):
    """What an engine exposing its depthwise stage would return if it made ``mutant``'s mistake."""
    ref = reference(case)
    y, z = mutants.MUTANTS[mutant].stages(case.layer, case.config, ref.inputs.x64, ref.inputs.weights64, case.dtype)
    return ref, EngineOutput(y=y.astype(np.float32), intermediate={"depthwise": z.astype(np.float32)})


def test_separable_stage_that_went_wrong_is_named(small_cases):
    case = small_cases["sep"]
    ref, out = _staged(case, "pointwise_not_transposed")
    text = sentences(diagnose.explain(case, "wrong", out, ref))
    assert "the depthwise stage agrees with the oracle" in text and "pointwise step" in text, text
    ref, out = _staged(case, "flipped_kernel")
    text = sentences(diagnose.explain(case, "wrong", out, ref))
    assert "the depthwise stage already disagrees" in text, text
    assert "matches the oracle's with the kernel flipped" in text, text


def test_torch_exposes_a_correct_depthwise_stage(small_cases, tmp_path):
    case = small_cases["sep"]
    r = run_one(case, "torch")
    assert r.verdict == "pass", r.message
    z = r.output.intermediate["depthwise"]
    assert z.shape == (2, 6, 5, 6) and z.dtype == np.float32
    assert sentences(diagnose.stage_verdicts(case, r.output, reference(case).inputs.x64,
                                         reference(case).inputs.weights64)).startswith("the depthwise stage agrees")
    # The hand-written block with a depthwise bias: its stage carries b_d, which diagnosis accounts for.
    with_bias = SEPARABLE.replace("padding: same}", "padding: same}\n    engine_options: {torch: {depthwise_bias: true}}", 1)
    biased = load_case(tmp_path, with_bias, "bias.yaml")
    r = run_one(biased, "torch")
    assert r.verdict == "pass", r.message
    assert "depthwise_bias" in r.output.intermediate
    ref = reference(biased)
    assert sentences(diagnose.stage_verdicts(biased, r.output, ref.inputs.x64, ref.inputs.weights64)).startswith(
        "the depthwise stage agrees")


def test_never_a_diagnosis_for_the_oracle(small_cases):
    case = small_cases["conv"]
    ref, out = _output(case, lambda y: y[..., ::-1])
    assert diagnose.explain(case, "wrong", out, ref) != []
    assert diagnose.explain(case, "oracle", out, ref) == []


# ---------------------------------------------------------------- failure classes converters show

from harness.diagnosis import causes  # noqa: E402
from harness.tensors.values import round_to  # noqa: E402
from harness.reference import oracle  # noqa: E402

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
    return {c.id: c for c in load_cases(tmp_path, CONVERTER_CASES, "converters.yaml")}


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
    text = sentences(diagnose.explain(case, "wrong", out, ref))
    assert text.startswith(f"computed internally in {precision}: the output matches the oracle's on inputs and "
                           f"weights rounded to {precision}, within {precision}'s bound"), text
    assert f"every output value is a {precision} number" in text, text


def test_inputs_rounded_to_a_narrower_precision_and_accumulated_in_float32_are_named(small_cases):
    case = small_cases["conv"]
    ref, out = _in_precision(case, "bfloat16", round_output=False)
    text = sentences(diagnose.explain(case, "wrong", out, ref))
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
    text = sentences(diagnose.explain(small_cases["sep"], "wrong", out, ref))
    assert text.startswith("computed internally in bfloat16 (") and said in text, text


def test_padding_on_the_batch_axis_is_named_with_the_axes_that_differ(converter_cases):
    # onnx2tf's F.pad on the wrong axes: Conv1D same, output (4, 7, 2) for input (1, 10, 2).
    case = converter_cases["c1-same"]
    ref = reference(case)
    text = sentences(diagnose.explain(case, "wrong", EngineOutput(y=np.zeros((4, 7, 2), np.float32)), ref))
    assert text.startswith("padding applied on the wrong axes: the spatial axes are as if unpadded ('valid': "
                           "steps 7) while batch grew by 3 (the padding total)"), text
    assert "the batch and steps axes differ: batch 4 instead of 1 (+3), steps 7 instead of 10 (-3)" in text, text


def test_shape_failures_name_the_axis_and_the_pattern(converter_cases):
    case = converter_cases["c1-same"]
    ref = reference(case)
    y = ref.y.astype(np.float32)
    found = {shape: diagnose.explain(case, "wrong", EngineOutput(y=value), ref) for shape, value in (
        ("lost", y[0]), ("layout", np.ascontiguousarray(np.moveaxis(y, -1, 1))),
        ("other", np.zeros((1, 9, 2), np.float32)))}
    text = {shape: sentences(f) for shape, f in found.items()}
    assert text["lost"].startswith("the batch axis was lost: the output has one sample's shape (10, 2) instead "
                                   "of (1, 10, 2)"), text["lost"]
    assert text["layout"].startswith("the output is channels_first where channels_last is expected"), text["layout"]
    assert text["other"] == "the steps axis differs: steps 9 instead of 10 (-1)", text["other"]
    assert [f.key for f in found["lost"]] == ["shape:batch-axis-lost"], found["lost"]
    assert [f.key for f in found["other"]] == ["shape:steps-differ"], found["other"]


def test_a_dtype_silently_changed_says_whether_the_values_agree_in_the_narrower_dtype(converter_cases):
    case = converter_cases["c64"]
    ref = reference(case)
    right = sentences(diagnose.explain(case, "wrong", EngineOutput(y=ref.y.astype(np.float32)), ref))
    assert right.startswith("the dtype silently changed to float32 (the case is float64): its values agree with "
                            "the oracle within float32's bound"), right
    assert right.endswith("computed in float32"), right
    wrong = sentences(diagnose.explain(case, "wrong", EngineOutput(y=(ref.y * 1.5).astype(np.float32)), ref))
    assert wrong.startswith("the dtype silently changed to float32 (the case is float64): its values disagree even "
                            "within float32's bound"), wrong
    # An engine whose registry entry says so (nobuco builds float64 as float32): the entry first, then the symptom.
    named = diagnose.explain(case, "nobuco", EngineOutput(y=ref.y.astype(np.float32)), ref)
    assert [(f.kind, f.id) for f in named][:1] == [("known_bug", "nobuco-float64-built-as-float32")], named
    assert named[-1].kind == "dtype", named


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
    f32 = engines.register_plugin(f"float32_out={__name__}:float32_out")
    bad = engines.register_plugin(f"invalid_graph={__name__}:invalid_graph")
    r = run_one(converter_cases["c64"], f32, diagnoser=DIAGNOSER)
    assert r.verdict == "fail" and "output dtype=float32, but should be float64" in r.message, r.message
    assert "; diagnosis: the dtype silently changed to float32 (the case is float64): its values agree" in r.message
    assert (r.decided_by, [f.key for f in r.findings]) == ("dtype", ["dtype:changed-to-float32"]), r.findings
    r = run_one(converter_cases["c64"], bad, diagnoser=DIAGNOSER)
    assert r.verdict == "error", r.message
    assert "; cause: the exported graph is invalid: the runtime refused to load what the converter wrote" in r.message
    assert r.message.endswith("the graph holds an op the runtime does not know: StatefulPartitionedCall"), r.message
    assert [f.key for f in r.findings] == ["error_cause:invalid-graph"], r.findings
    assert r.findings[0].evidence == {"op": "StatefulPartitionedCall"}, r.findings
    assert r.error_type == "RuntimeError" and "INVALID_GRAPH" in r.reason, (r.error_type, r.reason)


def _result(verdict, findings=(), decided_by="", error_type="", reason="", xfail_id="", xfail_from="", xfail=""):
    """A result as the scoreboard gets it; its message says nothing a label may read."""
    return Result("c", "c.yaml", "e", verdict, message="e: whatever the message says [c.yaml::c]",
                  findings=list(findings), decided_by=decided_by, error_type=error_type, reason=reason, xfail=xfail,
                  xfail_id=xfail_id, xfail_from=xfail_from)


@pytest.mark.parametrize("outcome, result, label", [
    ("fail", _result("fail", [Finding("shape", "padding-on-wrong-axes", "padding applied ..."),
                              Finding("shape", "batch+steps-differ", "the batch and steps axes differ: ...")], "shape"),
     "shape: padding-on-wrong-axes"),
    ("fail", _result("fail", [Finding("precision", "computed-in-bfloat16", "computed internally ...")], "values"),
     "precision: computed-in-bfloat16"),
    ("fail", _result("fail", [Finding("mutant", "flipped_kernel", "matches ... (or x [mutant y])")], "values"),
     "mutant flipped_kernel"),
    ("fail", _result("fail", [Finding("dtype", "changed-to-float32", "the dtype ...")], "dtype"),
     "dtype: changed-to-float32"),
    ("fail", _result("fail", [Finding("inherited", "keras-bias-add-guessed-nhwc", "inherited ...",
                                      {"engine": "keras"})], "values"),
     "inherited from keras: keras-bias-add-guessed-nhwc"),
    ("error", _result("error", [Finding("error_cause", "invalid-graph", "the exported graph is invalid: ...")],
                      error_type="RuntimeError", reason="[ONNXRuntimeError] : 10 : INVALID_GRAPH"),
     "error cause: invalid-graph"),
    ("error", _result("error", error_type="KeyError", reason="'x'"), "error: KeyError"),
    ("error", _result("error", error_type="RuntimeError", reason="TypeError: Expected tensor [[1]]"),
     "error: TypeError in the converter"),
    ("error", _result("error", error_type="RuntimeError", reason="not an exception name: x"), "error: RuntimeError"),
    ("fail", _result("fail", decided_by="values"), "wrong values (no known cause)"),
    ("fail", _result("fail", decided_by="shape"), "wrong output shape (no known cause)"),
    ("fail", _result("fail", decided_by="refusal"), "accepted a configuration it should refuse"),
    ("xfail", _result("fail", xfail_id="keras-bias-add-guessed-nhwc", xfail="keras-bias-add-guessed-nhwc: keras..."),
     "known bug: keras-bias-add-guessed-nhwc"),
    ("xfail", _result("fail", xfail_id="keras-bias-add-guessed-nhwc", xfail_from="keras",
                      xfail="inherited from keras: keras-bias-add-guessed-nhwc"),
     "inherited from keras: keras-bias-add-guessed-nhwc"),
    ("xpass", _result("pass", xfail_id="keras-bias-add-guessed-nhwc", xfail="keras-bias-add-guessed-nhwc: ..."),
     "known bug no longer shows: keras-bias-add-guessed-nhwc"),
])
def test_a_cause_label_is_short_and_stable(outcome, result, label):
    assert causes.label(outcome, result) == label


def test_rewording_a_diagnosis_moves_no_alarm_nor_cause(small_cases, monkeypatch):
    # Grouping reads (kind, id), never the sentence: a mutant's description reworded changes the message only.
    from harness.fuzz import search as fuzz

    name = engines.register_plugin("test_flipped=plugins_for_tests:flipped")
    before = run_one(small_cases["conv"], name, diagnoser=DIAGNOSER)
    monkeypatch.setattr(mutants.MUTANTS["flipped_kernel"], "diagnosis", "reworded: a mirrored kernel 7 (x2)")
    after = run_one(small_cases["conv"], name, diagnoser=DIAGNOSER)
    assert "reworded: a mirrored kernel 7 (x2)" in after.message and after.message != before.message, after.message
    assert fuzz.cause(name, after) == fuzz.cause(name, before) == f"{name}: mutant flipped_kernel"
    assert causes.label("fail", after) == causes.label("fail", before) == "mutant flipped_kernel"


def test_no_module_global_configures_the_core():
    # Diagnosis is an argument (run_one(..., diagnoser)): no install() hook, no suppression counter, no global.
    import harness

    root = Path(harness.__file__).parent
    text = {p: p.read_text(encoding="utf-8") for p in root.rglob("*.py")}
    for banned in ("install_diagnosis", "install_error_diagnosis", "install_gradient_diagnosis", "_suppressed",
                   "diagnose.install"):
        hits = [str(p.relative_to(root)) for p, t in text.items() if banned in t]
        assert not hits, f"{banned} in {hits}, but diagnosis should be passed to run_one"
    for name in ("judge/runner.py", "judge/forward.py", "judge/diagnoser.py", "diagnosis/diagnose.py",
                 "diagnosis/gradients.py"):
        assert "global " not in text[root / name], f"harness/{name} sets a module global"


def test_bfloat16_on_constant_data_is_named_a_precision_not_a_bias_mistake():
    # OpenVINO on a CPU with AVX512_BF16: Conv2D rgb-ones gives 40448 (a bfloat16 number) for 40404 everywhere,
    # one constant per channel, which a bias mistake would give too.
    cases, _ = load_paths([CASES])
    case = next(c for c in cases if c.id == "rgb-ones-conv2d")
    ref, out = _in_precision(case, "bfloat16")
    assert float(out.y.flat[0]) == 40448.0 and float(ref.y.flat[0]) == 40404.0, (out.y.flat[0], ref.y.flat[0])
    assert sentences(diagnose.explain(case, "wrong", out, ref)).startswith("computed internally in bfloat16: "), out.y


def test_a_bias_offset_on_small_integer_data_is_no_precision_problem(tmp_path):
    case = load_case(tmp_path, "cases:\n  - id: ints\n    layer: Conv2D\n    input_shape: [1, 4, 4, 2]\n"
                               "    config: {filters: 2, kernel_size: 2}\n    input: ones\n"
                               "    weights: {kernel: ones, bias: ones}\n", "ints.yaml")
    ref, out = _output(case, lambda y: y + 1.0)   # the bias added twice: 10 instead of 9, a bfloat16 number too
    assert sentences(diagnose.explain(case, "wrong", out, ref)).startswith("off by a constant per output channel"), out.y


F16 = """\
cases:
  - id: half
    layer: Conv2D
    input_shape: [1, 5, 4, 2]
    dtype: float16
    config: {filters: 2, kernel_size: 2}
"""


def test_a_bug_inherited_from_a_converter_is_named_as_that_converters_on_a_dtype_change(tmp_path, monkeypatch):
    """onnx2tf-legacy is onnx2tf fed the legacy export: onnx2tf's float16 built in float32 is named where its values
    are right and only the type changed (it was the symptom alone, 'dtype: changed-to-float32'), as the same
    converter's bug, not as a framework's bug carried through a conversion."""
    from harness.known.registry import REGISTRY

    case = load_case(tmp_path, F16)
    ref = reference(case)
    out = EngineOutput(y=ref.y.astype(np.float32))   # right values, float32 for float16
    entry = REGISTRY["onnx2tf-float16-returned-as-float32"]
    monkeypatch.setattr(diagnose, "matching_bug", lambda engine, case, seen, mutant: entry)
    found = DIAGNOSER.forward(case, "onnx2tf-legacy", out, ref, None)
    assert [f.key for f in found] == [f"inherited:{entry.id}", "dtype:changed-to-float32"], found
    assert found[0].evidence == {"engine": "onnx2tf"} and "the same converter's bug" in found[0].text, found[0]
    assert "not a bug of the converter" not in found[0].text, found[0].text
