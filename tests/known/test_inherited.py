"""Inherited known behaviour: an engine built from the Keras graph (Engine.inherits = "keras") inherits the case's
keras xfail / rejected_by, evaluated on its own run facts; runtime dtype limits skip before the engine runs."""
from __future__ import annotations

import numpy as np
import pytest

from harness import engines
from harness.known import facts, registry as known
from harness.diagnosis import diagnose
from harness.mutation import mutants
from harness.engines.base import Engine, EngineOutput, Request
from harness.errors import EngineRejected
from harness.judge.runner import outcome, run_one
from harness.scoreboard import board
from testkit import load_case

BUG = "keras-bias-add-guessed-nhwc"
REFUSAL = "keras-conv-strides-with-dilation-refused"
# channels_first with a bias, output (1, 3, 3, 3): its last axis is as long as its 3 channels, so the Keras bias bug
# touches it.
BIASED = f"""\
cases:
  - id: dw
    layer: DepthwiseConv2D
    input_shape: [1, 3, 5, 5]
    config: {{kernel_size: 3, data_format: channels_first}}
    xfail: {{keras: {BUG}}}
"""
STRIDED = f"""\
cases:
  - id: sd
    layer: Conv2D
    input_shape: [1, 9, 9, 2]
    config: {{filters: 2, kernel_size: 2, strides: 2, dilation_rate: 2}}
    expect: {{rejected_by: {{keras: {REFUSAL}}}}}
"""


def _facts(request: Request) -> dict:
    """The run facts an engine built from the Keras graph reports (harness/engines/keras_graph.py)."""
    return {"keras_backend": "tensorflow", "keras_layer_format": request.config.get("data_format", "channels_last"),
            "onednn": None}


def _oracle(request: Request) -> np.ndarray:
    return mutants.reference_port(request.layer, request.config, request.inputs.x, request.inputs.weights)


class Heir(Engine):
    """Correct, built from the Keras graph: a converter that hides Keras's bias bug (as tf2onnx's folding does)."""

    name = "heir"
    inherits = "keras"

    def run(self, request: Request) -> EngineOutput:
        return EngineOutput(y=_oracle(request), facts=_facts(request))


class BuggyHeir(Heir):
    """Carries Keras's bias bug through the conversion."""

    def run(self, request: Request) -> EngineOutput:
        y = mutants.MUTANTS["bias_add_format_guessed"](request.layer, request.config, request.inputs.x,
                                                      request.inputs.weights)
        return EngineOutput(y=y, facts=_facts(request))


class TransposingHeir(BuggyHeir):
    """Wrong in the same way, but its Keras layer ran channels_last: the bug's condition does not hold for it."""

    def run(self, request: Request) -> EngineOutput:
        out = super().run(request)
        out.facts["keras_layer_format"] = "channels_last"
        return out


class ReshapingHeir(Heir):
    """Loses the batch axis: its own failure, whatever Keras's bugs."""

    def run(self, request: Request) -> EngineOutput:
        return EngineOutput(y=_oracle(request)[0], facts=_facts(request))


class RefusingHeir(Heir):
    def run(self, request: Request) -> EngineOutput:
        raise EngineRejected("the converter refuses strides with dilation", _facts(request))


class WrongHeir(Heir):
    def run(self, request: Request) -> EngineOutput:
        return EngineOutput(y=_oracle(request) * 2, facts=_facts(request))


class Limited(Engine):
    """A runtime without float64 kernels: its float64 items must skip before it runs."""

    name = "limited"
    dtype_limits = {"float64": "this runtime has no float64 Conv kernel on CPU"}

    def run(self, request: Request) -> EngineOutput:
        if request.dtype == "float64":
            raise AssertionError("run() called for a dtype the engine declares it cannot compute")
        return EngineOutput(y=_oracle(request))


FAKES = {"heir": Heir, "buggy_heir": BuggyHeir, "transposing_heir": TransposingHeir,
         "reshaping_heir": ReshapingHeir, "refusing_heir": RefusingHeir, "wrong_heir": WrongHeir,
         "limited": Limited}


@pytest.fixture(autouse=True)
def fake_engines(monkeypatch):
    """The fake engines as built-ins, and the process facts of the Keras version the registry names (the bug's
    condition asks for keras==3.15.1; the run facts come from each engine)."""
    for name, cls in FAKES.items():
        monkeypatch.setitem(engines.BUILTIN, name, f"{__name__}:{cls.__name__}")
        monkeypatch.delitem(engines._loaded, name, raising=False)
    real = facts.process_facts
    monkeypatch.setattr(facts, "process_facts", lambda: {**real(), "keras": "3.15.1"})
    yield
    for name in FAKES:
        engines._loaded.pop(name, None)


def test_an_inherited_bug_that_shows_is_an_xfail_said_to_be_inherited(tmp_path):
    r = run_one(load_case(tmp_path, BIASED), "buggy_heir")
    assert r.verdict == "fail", f"verdict={r.verdict} ({r.message}), but should be fail"
    assert r.xfail == f"inherited from keras: {BUG}", f"xfail={r.xfail!r}"
    assert outcome(r.verdict, r.xfail) == "xfail"
    assert f"inherited from keras: {BUG}" in r.message, r.message
    assert any(n.startswith(f"inherited from keras: {BUG}") for n in r.notes), r.notes


def test_the_diagnosis_says_inherited_even_where_the_case_does_not_pin_it(tmp_path):
    case = load_case(tmp_path, BIASED.replace(f"    xfail: {{keras: {BUG}}}\n", ""))
    r = run_one(case, "buggy_heir", diagnoser=diagnose.Diagnoser())
    assert (r.verdict, r.xfail) == ("fail", ""), (r.verdict, r.xfail)
    assert [f.key for f in r.findings] == ["mutant:bias_add_format_guessed", f"inherited:{BUG}"], r.findings
    assert "[mutant bias_add_format_guessed]" in r.message, r.message
    assert f"inherited from keras: {BUG}" in r.message and "not a bug of the converter" in r.message, r.message
    # What the fuzzer asks (known.matching_bug): a true alarm of keras's, not a false alarm of the heir's.
    seen = {**facts.process_facts(), "dtype": case.dtype, "layer": case.layer, **r.facts}
    assert known.matching_bug("buggy_heir", case, seen, "bias_add_format_guessed").id == BUG


def test_an_inherited_bug_the_converter_hides_is_a_pass_with_a_note_not_an_xpass(tmp_path):
    r = run_one(load_case(tmp_path, BIASED), "heir")
    assert (r.verdict, r.xfail, outcome(r.verdict, r.xfail)) == ("pass", "", "pass"), (r.verdict, r.xfail, r.message)
    assert f"keras's known bug {BUG} does not show here: the converter hides it" in r.notes, r.notes
    # A finding, not a note only: the converter changed the meaning of the graph it was given (the scoreboard
    # counts it under its cause, with a repro); the pass's message stays the pass's.
    assert [(f.kind, f.id, f.evidence) for f in r.findings] == [("hidden", BUG, {"engine": "keras"})], r.findings
    cell = board.Cell()
    cell.add(load_case(tmp_path, BIASED), r)
    (cause,) = cell.as_dict()["causes"]
    assert (cause["cause"], cause["count"], cause["outcomes"]) == (f"hides keras's known bug: {BUG}", 1, {"pass": 1})
    assert cause["example"]["repro"] == r.repro and "changed the graph's meaning" in cause["example"]["message"]


def test_a_converter_that_shows_the_inherited_bug_hides_nothing(tmp_path):
    r = run_one(load_case(tmp_path, BIASED), "buggy_heir")
    assert not [f for f in r.findings if f.kind == "hidden"], r.findings


def test_an_inherited_bug_is_evaluated_on_the_heirs_own_run_facts(tmp_path):
    r = run_one(load_case(tmp_path, BIASED), "transposing_heir")
    assert (r.verdict, r.xfail) == ("fail", ""), f"verdict, xfail={r.verdict, r.xfail}, but should be fail, ''"
    note = next((n for n in r.notes if n.startswith("not expected here (inherited from keras)")), "")
    assert BUG in note and "keras_layer_format" in note, r.notes


def test_an_engines_own_entry_wins_and_stays_strict(tmp_path):
    own = BIASED.replace(f"xfail: {{keras: {BUG}}}", f'xfail: {{keras: {BUG}, heir: {{reason: "its own bug", '
                                                     'when: {numpy: ">=1"}}}')
    r = run_one(load_case(tmp_path, own), "heir")
    assert (r.verdict, r.xfail, outcome(r.verdict, r.xfail)) == ("pass", "its own bug", "xpass"), (r.verdict, r.xfail)


def test_a_shape_failure_is_the_heirs_own_even_where_an_inherited_bug_holds(tmp_path):
    r = run_one(load_case(tmp_path, BIASED), "reshaping_heir")
    assert (r.verdict, r.xfail) == ("fail", ""), (r.verdict, r.xfail, r.message)
    assert any(f"known bug {BUG} holds here, but this shape failure is not it" in n for n in r.notes), r.notes


def test_an_inherited_refusal_counts_as_expected(tmp_path):
    r = run_one(load_case(tmp_path, STRIDED), "refusing_heir")
    assert r.verdict == "pass", f"verdict={r.verdict} ({r.message}), but should be pass"
    assert r.message.startswith(f"rejected, as the case expects (inherited from keras: {REFUSAL}): "), r.message


def test_an_heir_that_accepts_what_keras_refuses_is_judged_on_its_values(tmp_path):
    case = load_case(tmp_path, STRIDED)
    right, wrong = run_one(case, "heir"), run_one(case, "wrong_heir")
    assert right.verdict == "pass", f"verdict={right.verdict} ({right.message}), but should be pass"
    assert f"keras refuses this configuration ({REFUSAL}); heir accepts it and is judged on its values" in right.notes
    assert wrong.verdict == "fail" and "max error/bound" in wrong.message, wrong.message
    assert "should reject it" not in wrong.message, wrong.message


def test_a_runtime_dtype_limit_skips_before_the_engine_runs(tmp_path):
    f64 = load_case(tmp_path, STRIDED.replace("    expect: {rejected_by: {keras: " + REFUSAL + "}}\n", "")
                + "    dtype: float64\n")
    r = run_one(f64, "limited")
    assert r.verdict == "skip", f"verdict={r.verdict} ({r.message}), but should be skip"
    assert "limited cannot compute float64: this runtime has no float64 Conv kernel on CPU" in r.message, r.message
    assert "a limit of the runtime" in r.message and "not a bug" in r.message, r.message
    f32 = load_case(tmp_path, STRIDED.replace("    expect: {rejected_by: {keras: " + REFUSAL + "}}\n", ""), "d.yaml")
    assert run_one(f32, "limited").verdict == "pass"


def test_lineage_follows_the_trait():
    assert known.lineage("buggy_heir") == ["buggy_heir", "keras"]
    assert known.lineage("keras") == ["keras"]
    assert known.lineage("no-such-engine") == ["no-such-engine"]
