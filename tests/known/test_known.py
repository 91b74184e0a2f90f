"""The condition language, the known-behaviour registry, and expectations that hold only where their condition does."""
import re

import pytest

from harness import engines
from harness.known import facts
from harness.known.conditions import evaluate, validate
from harness.mutation.mutants import MUTANTS
from harness.engines.base import Engine
from harness.known.registry import REGISTRY, markdown, parse
from harness.judge.runner import run_one
from harness.cases.schema import load_file, load_paths
from testkit import ROOT, load_case, register_plugins, write_yaml

HERE = {"keras": "3.15.1", "onednn": False, "cpu_has": ["avx2", "avx512f"], "machine": "x86_64",
        "keras_layer_format": "channels_first"}


# ---------------------------------------------------------------- the condition language

@pytest.mark.parametrize("when, holds", [
    ({"keras": "==3.15.1"}, True),
    ({"keras": ">=3.16"}, False),
    ({"keras": ">=3.10,<3.16"}, True),
    ({"onednn": False}, True),
    ({"onednn": True}, False),
    ({"cpu_has": ["avx2", "avx512f"]}, True),
    ({"cpu_has": "amx_tile"}, False),
    ({"machine": ["aarch64", "x86_64"]}, True),
    ({"keras": "==3.15.1", "onednn": True}, False),                       # every entry must hold
    ({"any": [{"onednn": True}, {"keras_layer_format": "channels_first"}]}, True),
    ({"any": [{"onednn": True}, {"machine": "aarch64"}]}, False),
    ({}, True),
])
def test_condition_evaluates_over_facts(when, holds):
    got = evaluate(when, HERE)
    assert got.holds is holds, f"holds={got.holds}, but should be {holds} [{when}: {got.explanation}]"


def test_an_unknown_fact_never_holds_and_says_so():
    got = evaluate({"tensorflow": "==2.21.0"}, HERE)   # no TensorFlow fact here
    assert not got.holds and "here: unknown" in got.explanation, f"explanation={got.explanation!r}"
    got = evaluate({"onednn": False}, {**HERE, "onednn": None})   # TensorFlow never loaded
    assert not got.holds, f"holds={got.holds}, but an unknown fact must not satisfy a condition"


def test_explanation_names_what_was_asked_and_what_was_seen():
    text = evaluate({"keras": "==3.16.0", "onednn": True}, HERE).explanation
    assert "keras==3.16.0 (here: 3.15.1)" in text and "onednn=true (here: false)" in text, text


@pytest.mark.parametrize("when, field, words", [
    ({"kears": "==3"}, "w.kears", "unknown fact"),
    ({"keras": "three"}, "w.keras", "not a version specifier"),
    ({"onednn": "yes"}, "w.onednn", "true or false"),
    ({"machine": 3}, "w.machine", "text or a list of text"),
    ({"any": []}, "w.any", "non-empty list"),
    ({"any": [{"onednn": 1}]}, "w.any[0].onednn", "true or false"),
    (["onednn"], "w", "a condition is a mapping"),
])
def test_bad_conditions_name_the_field(when, field, words):
    problems = validate(when, "w")
    assert problems and problems[0].startswith(field + ":") and words in problems[0], f"problems={problems}"


def test_process_facts_import_no_framework_and_read_this_machine():
    import subprocess
    import sys

    code = ("import sys; from harness.known import facts; f = facts.process_facts(); "
            "assert 'tensorflow' not in sys.modules and 'torch' not in sys.modules, 'a framework was imported'; "
            "assert f['onednn'] is None and f['keras_backend'] is None, f; print(f['numpy'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    import numpy

    assert out.stdout.strip() == numpy.__version__, f"numpy fact={out.stdout.strip()}, but should be {numpy.__version__}"


def test_choosing_the_kernel_path_after_tensorflow_loaded_is_refused(monkeypatch):
    monkeypatch.setattr(facts, "onednn", lambda: True)   # as if TensorFlow had loaded with oneDNN on
    monkeypatch.delenv(facts.REQUEST_VARIABLE, raising=False)
    monkeypatch.delenv(facts.ONEDNN_VARIABLE, raising=False)
    with pytest.raises(ValueError, match="already loaded with oneDNN on"):
        facts.request_onednn("off")
    facts.request_onednn("on")   # the path it already runs: fine
    assert facts.requested_onednn() is True


# ---------------------------------------------------------------- the registry

def test_every_entry_is_complete_and_documented():
    readme = (ROOT / "README.md").read_text()
    for entry in REGISTRY.values():
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)+", entry.id), f"id={entry.id!r}, but should be a slug"
        assert entry.kind in ("bug", "refusal"), f"kind={entry.kind}, but should be bug or refusal [{entry.id}]"
        assert entry.summary and entry.repro and entry.touches and entry.when, f"incomplete entry [{entry.id}]"
        assert not validate(dict(entry.when), entry.id), f"condition={validate(dict(entry.when), entry.id)} [{entry.id}]"
        assert entry.mutant is None or entry.mutant in MUTANTS, f"mutant={entry.mutant}, not a mutant [{entry.id}]"
    listed = readme.split("<!-- known: ", 1)[1].split("-->\n", 1)[1].split("\n<!-- /known -->", 1)[0]
    assert listed == markdown(), "README's list of known behaviour differs from the registry: paste " \
                                 "harness.known.registry.markdown() between its <!-- known --> markers"


def test_every_pinned_behaviour_in_the_shipped_cases_refers_to_the_registry():
    cases, errors = load_paths([ROOT / "cases"])
    assert not errors, errors
    # The oracle and the torch port are the harness's own code: their refusals are its own checks, everywhere.
    unnamed = [(c.id, e) for c in cases for table in (c.xfail, c.rejected_by) for e, x in table.items()
               if x.known is None and not x.when and e not in ("oracle", "torch")]
    assert not unnamed, f"expectations without a registry id or condition={unnamed}, but should be none"
    used = {x.known for c in cases for table in (c.xfail, c.rejected_by) for x in table.values()}
    pinned_by_a_case = {k for k, v in REGISTRY.items() if k != "tf-eigen-nchw-conv-refused"}  # a workaround, noted
    assert pinned_by_a_case <= used, f"registry entries no case pins={sorted(pinned_by_a_case - used)}"


@pytest.mark.parametrize("written, kind, problem", [
    ("keras-bias-add-guesed-nhwc", "bug", "did you mean 'keras-bias-add-guessed-nhwc'"),
    ("keras-causal-depthwise-refused", "bug", "is a refusal, but this field takes a bug"),
    ({"known": "keras-bias-add-guessed-nhwc", "when": {"onednn": "on"}}, "bug", "xfail.keras.when.onednn"),
    ({"reason": " "}, "bug", "needs a registry id (known) or the reason"),
    ({"reason": "x", "because": 1}, "bug", "xfail.keras.because: unknown key"),
    (3, "bug", "must be a registry id, a reason"),
    ({"reason": "x y", "tensors": ["dw"]}, "bug", "xfail.keras.tensors: must be a list of output, gradients, dx"),
    ({"known": "keras-bias-add-guessed-nhwc", "tensors": ["dx"]}, "bug", "the registry declares what"),
])
def test_bad_expectations_name_the_field(written, kind, problem):
    expectation, got = parse(written, "xfail.keras", kind)
    assert expectation is None and problem in (got or ""), f"problem={got!r}, but should mention {problem!r}"


def test_a_reason_with_spaces_is_text_and_an_id_is_the_registry_entry():
    text, _ = parse("my port flips kernels", "xfail.x", "bug")
    assert text.known is None and text.reason == "my port flips kernels", text
    known, _ = parse("keras-bias-add-guessed-nhwc", "xfail.keras", "bug")
    assert known.known == "keras-bias-add-guessed-nhwc" and known.entry is REGISTRY[known.known], known


def test_a_registry_entry_that_touches_no_point_of_the_case_is_an_error(tmp_path):
    cases, errors = load_file(write_yaml(tmp_path, """\
cases:
  - id: c
    layer: DepthwiseConv2D
    input_shape: [1, 5, 5, 2]
    config: {kernel_size: 3}
    xfail: {keras: keras-bias-add-guessed-nhwc}
"""))
    assert not cases and len(errors) == 1, f"errors={errors}"
    assert errors[0].field == "xfail.keras" and "touches no configuration" in errors[0].message, str(errors[0])


def test_in_a_sweep_a_registry_entry_holds_only_at_the_points_it_touches(tmp_path):
    cases, errors = load_file(write_yaml(tmp_path, """\
cases:
  - id: c
    layer: DepthwiseConv2D
    input_shape: [1, 2, 5, 4]
    config: {kernel_size: [1, 2], data_format: channels_first, depth_multiplier: 2}
    xfail: {keras: keras-bias-add-guessed-nhwc}
    sweep: {padding: [same, valid]}
"""))
    assert not errors, errors
    touched = {c.id: REGISTRY["keras-bias-add-guessed-nhwc"].applies(c) for c in cases}
    # same keeps W = 4 = C*M (the bug's trigger); valid gives W = 3.
    assert touched == {"c(padding=same)": True, "c(padding=valid)": False}, f"touched={touched}"


# ---------------------------------------------------------------- verdicts where a condition holds or not

FLIP = """\
cases:
  - id: c
    layer: Conv2D
    input_shape: [1, 5, 5, 2]
    config: {filters: 2, kernel_size: 3}
"""


@pytest.fixture(scope="module", autouse=True)
def plugins():
    register_plugins("flipped", "correct", "refusing")


def test_a_known_bug_whose_condition_holds_is_expected(tmp_path):
    case = load_case(tmp_path, FLIP + '    xfail: {flipped: {reason: "flips kernels", when: {numpy: ">=1"}}}\n')
    r = run_one(case, "flipped")
    assert (r.verdict, r.xfail) == ("fail", "flips kernels"), f"verdict, xfail={r.verdict, r.xfail}"


def test_a_known_bug_whose_condition_does_not_hold_is_judged_and_noted(tmp_path):
    case = load_case(tmp_path, FLIP + '    xfail: {flipped: {reason: "flips kernels", when: {numpy: "<1"}}}\n'
                                  '    sweep: {seed: [0]}\n')
    r = run_one(case, "flipped")
    assert (r.verdict, r.xfail) == ("fail", ""), f"verdict, xfail={r.verdict, r.xfail}, but should be fail, ''"
    assert any("not expected here: flips kernels" in n and "numpy<1" in n for n in r.notes), f"notes={r.notes}"
    right = run_one(load_case(tmp_path, FLIP + '    xfail: {correct: {reason: "x y", when: {numpy: "<1"}}}\n'), "correct")
    assert (right.verdict, right.xfail) == ("pass", ""), f"verdict={right.verdict}: a pass where the bug is not expected"


def test_a_refusal_is_pinned_only_where_its_condition_holds(tmp_path):
    holds = load_case(tmp_path, FLIP + '    expect: {rejected_by: {refusing: {reason: "r s", when: {numpy: ">=1"}}}}\n')
    assert run_one(holds, "refusing").verdict == "pass"
    other = load_case(tmp_path, FLIP + '    expect: {rejected_by: {refusing: {reason: "r s", when: {numpy: "<1"}}, '
                                   'correct: {reason: "r s", when: {numpy: "<1"}}}}\n')
    refused, accepted = run_one(other, "refusing"), run_one(other, "correct")
    assert refused.verdict == "rejected", f"verdict={refused.verdict}, but should be rejected (not expected here)"
    assert accepted.verdict == "pass", f"verdict={accepted.verdict}, but should be pass (judged on its values)"


def test_a_strict_known_bug_that_no_longer_shows_fails_in_pytest(pytester):
    pytester.makefile(".yaml", cases=FLIP + '    xfail: {correct: {reason: "was a bug", when: {numpy: ">=1"}}}\n'
                                          '  - id: d\n    layer: Conv1D\n    input_shape: [1, 5, 2]\n'
                                          '    config: {filters: 2, kernel_size: 3}\n'
                                          '    xfail: {flipped: {reason: "flips", when: {numpy: ">=1"}}}\n')
    result = pytester.runpytest("cases.yaml", "--engine", "oracle", "--engine", "correct=tests.plugins_for_tests:correct",
                                "--engine", "flipped=tests.plugins_for_tests:flipped", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, failed=2, xfailed=1)   # c[correct] XPASS(strict), c[flipped] fails
    result.stdout.fnmatch_lines(["*XPASS(strict)*was a bug*"])


def test_keras_records_the_kernel_path_and_layout_it_ran(tmp_path):
    """The facts the conditions read are the ones that decided the run (subprocesses: one TensorFlow each)."""
    import json
    import subprocess
    import sys

    pytest.importorskip("keras")
    path = tmp_path / "c.yaml"
    path.write_text("cases:\n  - id: c\n    layer: Conv2D\n    input_shape: [1, 2, 5, 5]\n"
                    "    config: {filters: 2, kernel_size: 3, data_format: channels_first}\n")
    code = ("import json, sys; from harness.known import facts; facts.request_onednn(sys.argv[2]); "
            "from harness.cases.schema import load_file; from harness.judge.runner import run_one; "
            "r = run_one(load_file(sys.argv[1])[0][0], 'keras'); "
            "print(json.dumps({'verdict': r.verdict, 'facts': r.facts, 'notes': r.notes}))")
    for choice in ("on", "off"):
        out = subprocess.run([sys.executable, "-c", code, str(path), choice], capture_output=True, text=True,
                             cwd=ROOT, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        got = json.loads(out.stdout.strip().splitlines()[-1])
        if got["verdict"] == "skip":   # a TensorFlow build that ignores the variable: said, not mislabelled
            continue
        assert got["verdict"] == "pass" and got["facts"]["onednn"] is (choice == "on"), f"{choice}: {got}"
        transposed = any("run as channels_last with transposes" in n for n in got["notes"])
        want = "channels_last" if transposed else "channels_first"
        assert got["facts"]["keras_layer_format"] == want, f"{choice}: keras_layer_format={got['facts']}, " \
                                                           f"but should be {want} (notes={got['notes']})"


IMPOSSIBLE = """\
cases:
  - id: z
    layer: Conv2D
    input_shape: [1, 5, 5, 2]
    config: {filters: 0, kernel_size: 3}
"""


def test_an_impossible_configuration_is_a_schema_error_unless_its_refusals_are_pinned(tmp_path):
    cases, errors = load_file(write_yaml(tmp_path, IMPOSSIBLE))
    assert not cases and errors[0].field == "config.filters" and "positive integer" in errors[0].message, errors
    pinned = IMPOSSIBLE + "    expect: {rejected_by: [oracle], output_shape: [1, 3, 3, 0]}\n"
    cases, errors = load_file(write_yaml(tmp_path, pinned))
    assert not cases and errors[0].field == "expect" and "no output to check" in errors[0].message, errors


def test_an_impossible_configuration_reaches_every_engine(tmp_path):
    engines.register_plugin("accepting=tests.plugins_for_tests:accepting")
    case = load_case(tmp_path, IMPOSSIBLE + "    expect: {rejected_by: [oracle, accepting]}\n")
    oracle_item = run_one(case, "oracle")
    assert oracle_item.verdict == "pass" and "config.filters: must be a positive integer" in oracle_item.message, \
        f"verdict={oracle_item.verdict}, but the oracle should refuse, naming the field [{oracle_item.message}]"
    accepted = run_one(case, "accepting")
    assert accepted.verdict == "fail" and "should reject it" in accepted.message, accepted.message
    unlisted = load_case(tmp_path, IMPOSSIBLE + "    expect: {rejected_by: [oracle]}\n")
    skipped = run_one(unlisted, "accepting")
    assert skipped.verdict == "skip" and "no reference to judge" in skipped.message, skipped.message


# ---------------------------------------------------------------- a known bug explains only the tensors it moves

class GradientHeir(Engine):
    """Built from the Keras graph (inherits keras's known behaviour), correct but for the gradient the case's
    engine option names (dx or dbias doubled)."""

    name = "gradient_heir"
    inherits = "keras"
    computes_gradients = True
    wrong = "x"

    def run(self, request):
        import numpy as np

        from harness.reference.gradients import reference_gradients
        from harness.engines.base import EngineOutput
        from harness.reference.oracle import run as oracle_run

        x64 = request.inputs.x.astype(np.float64)
        w64 = {k: v.astype(np.float64) for k, v in request.inputs.weights.items()}
        y = oracle_run(request.layer, request.config, x64, w64).astype(request.inputs.x.dtype)
        grads = reference_gradients(x64, w64, request.geometry, request.grad_output.astype(np.float64))
        grads[self.wrong] = grads[self.wrong] * 2 + 1   # the port's own mistake in one gradient
        facts = {"keras_backend": "tensorflow", "keras_layer_format": request.config["data_format"]}
        return EngineOutput(y=y, gradients={k: v.astype(request.inputs.x.dtype) for k, v in grads.items()},
                            facts=facts)


class WrongBias(GradientHeir):
    wrong = "bias"


BIASED_BACKWARD = """\
cases:
  - id: dw
    layer: DepthwiseConv2D
    input_shape: [1, 3, 5, 5]
    config: {kernel_size: 3, data_format: channels_first, activation: ACT}
    check: [backward]
    xfail: {keras: keras-bias-add-guessed-nhwc}
"""


@pytest.fixture()
def gradient_heirs(monkeypatch):
    for name, cls in (("gradient_heir", GradientHeir), ("wrong_bias_heir", WrongBias)):
        monkeypatch.setitem(engines.BUILTIN, name, f"{__name__}:{cls.__name__}")
        monkeypatch.delitem(engines._loaded, name, raising=False)
    real = facts.process_facts
    monkeypatch.setattr(facts, "process_facts", lambda: {**real(), "keras": "3.15.1"})
    yield
    for name in ("gradient_heir", "wrong_bias_heir"):
        engines._loaded.pop(name, None)


@pytest.mark.parametrize("engine, activation, want", [
    ("wrong_bias_heir", "linear", "xfail"),   # dbias: what the bias bug moves
    ("gradient_heir", "linear", "fail"),      # dx: the bias bug cannot explain it with a linear activation
    ("gradient_heir", "relu", "xfail"),       # through relu the wrong pre-activation moves every gradient
])
def test_a_known_bug_explains_only_the_tensors_it_declares(tmp_path, gradient_heirs, engine, activation, want):
    from harness.judge.runner import outcome

    case = load_case(tmp_path, BIASED_BACKWARD.replace("ACT", activation))
    r = run_one(case, engine, "backward")
    got = outcome(r.verdict, r.xfail)
    assert got == want, f"{engine}, {activation}: outcome={got}, but should be {want} [{r.message}]"
    if want == "fail":
        assert "keras-bias-add-guessed-nhwc does not explain dx" in r.message, r.message


def test_a_bug_of_the_gradients_alone_does_not_hide_a_wrong_forward_output(tmp_path):
    """torch-float64-hardsigmoid-grad-float32-constant moves the gradients only: a forward failure is judged."""
    case = load_case(tmp_path, FLIP.replace("filters: 2, kernel_size: 3", "filters: 2, kernel_size: 3, activation: "
                                        "hard_sigmoid") + "    dtype: float64\n    check: [forward, backward]\n"
                 "    xfail: {flipped: torch-float64-hardsigmoid-grad-float32-constant}\n")
    r = run_one(case, "flipped")
    assert (r.verdict, r.xfail) == ("fail", ""), f"verdict, xfail={r.verdict, r.xfail}: should be a plain fail"
    assert "does not explain the output" in r.message, r.message


def test_every_known_bug_declares_the_tensors_it_moves():
    from harness.known.registry import TENSORS

    for entry in REGISTRY.values():
        if entry.kind == "bug":
            assert entry.tensors and set(entry.tensors) <= set(TENSORS), f"{entry.id}: tensors={entry.tensors}"


def test_a_reason_that_declares_its_tensors_explains_only_those(tmp_path):
    case = load_case(tmp_path, FLIP + '    xfail: {flipped: {reason: "wrong bias gradient", tensors: [dbias]}}\n')
    r = run_one(case, "flipped")
    assert (r.verdict, r.xfail) == ("fail", ""), f"verdict, xfail={r.verdict, r.xfail}: the output is not dbias"
    assert "wrong bias gradient does not explain the output (it moves dbias)" in r.message, r.message
