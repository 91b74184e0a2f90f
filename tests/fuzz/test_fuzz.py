"""Fuzzing: generated configurations are valid, every engine agrees on a fixed budget, alarms come back as YAML."""
from __future__ import annotations

import json

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pytest

import fuzz_engines_for_tests as wrong   # tests/ is on sys.path (tests/conftest.py)
from harness import engines
from harness.known import registry as known
from harness.fuzz import search as fuzz
from harness.mutation import mutants
from harness.judge.findings import Finding
from harness.layers.geometry import LAYERS, output_shape
from harness.judge.runner import Result, run_one
from testkit import load_case, load_cases

# The fixed budget of `make test` (about 10 s with Keras after its import); the long run is `make fuzz N=20000`.
BUDGET = 200


@settings(max_examples=300, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(entry=fuzz.entries())
def test_generated_configurations_are_valid_cases(entry):
    case = fuzz.to_case(entry)   # raises CaseError (a failure) if the schema refuses it
    assert min(output_shape(case.geometry, case.input_shape)) > 0
    assert case.layer in LAYERS


def test_strategy_reaches_every_layer_dtype_and_format():
    seen = set()

    @settings(max_examples=400, deadline=None, derandomize=True, database=None)
    @given(entry=fuzz.entries())
    def collect(entry):
        seen.update({entry["layer"], entry["dtype"], entry["config"]["data_format"], entry["config"]["padding"]})

    collect()
    wanted = set(LAYERS) | set(fuzz.DTYPES) | set(fuzz.DATA_FORMATS) | {"valid", "same", "causal"}
    assert wanted <= seen, f"never generated={sorted(wanted - seen)}, but every value should be reachable"


def test_fixed_budget_in_every_engine_has_no_false_alarm(one_torch_thread, record_property):
    stats = fuzz.search(BUDGET, engines=("oracle", "keras", "torch"), seed=None)
    record_property("fuzz_configs_per_s", round(stats.tried / stats.duration_s, 1))
    assert stats.false_alarms == [], "false alarms:\n" + "\n".join(stats.false_alarms)
    assert stats.invalid == 0, f"configurations the schema refused={stats.invalid}, but should be 0"
    assert stats.tried == BUDGET, f"configurations tried={stats.tried}, but should be {BUDGET}"
    for engine in ("oracle", "keras", "torch"):
        ratios = [v for k, v in stats.max_ratio.items() if k.startswith(engine + " ")]
        assert ratios and max(ratios) <= 1.0, f"{engine}: largest error/bound={ratios}, but should be <= 1"


def test_a_disagreement_is_shrunk_and_printed_as_a_case_that_fails_again(tmp_path):
    # A deliberately wrong engine (the flipped-kernel mutant) must raise alarms, its most frequent cause the
    # flipped kernel, shrunk by hypothesis to a small configuration, printed as YAML that loads as a case and
    # fails again in that engine. (Where the output has one element, a flip of a causal kernel looks like causal
    # padding on the wrong side: the diagnosis names that, a cause of its own.)
    name = mutants.register(["flipped_kernel"])[0]
    stats = fuzz.search(40, engines=(name,), seed=None, rechecks=1)
    causes = stats.causes("false_alarm")
    assert causes and causes[0] == f"{name}: mutant flipped_kernel", fuzz.format_stats(stats)
    message, _, yaml_text = stats.groups[causes[0]]["text"].partition("\n")
    assert "kernel flipped" in message, f"diagnosis={message!r}, but should name the flipped kernel"
    (case,) = load_cases(tmp_path, "cases:\n" + yaml_text + "\n", "shrunk.yaml")
    # Shrunk: one sample, float32, the first layer kind, the smallest kernel that a flip can change.
    assert case.input_shape[0] == 1 and case.dtype == "float32" and case.layer == "Conv1D", yaml_text
    assert case.geometry.kernel_size == (2,), yaml_text
    assert run_one(case, name).verdict == "fail"


def test_a_refused_configuration_is_counted_apart_from_disagreements():
    pytest.importorskip("keras")
    entry = {"layer": "Conv1D", "input_shape": [1, 9, 2], "dtype": "float32", "seed": 0, "input": "normal",
             "config": {"filters": 2, "kernel_size": 3, "strides": 2, "dilation_rate": 2}}
    stats = fuzz.search(1, engines=("oracle", "keras"), seed=None, strategy=st.just(entry))
    assert stats.false_alarms == [] and stats.rejected_configs == 1, fuzz.format_stats(stats)
    assert any(k.startswith("keras: Conv1D:") for k in stats.rejected), stats.rejected


def test_known_framework_bug_is_a_true_alarm_not_a_false_one():
    # Keras 3.15.1 adds a channels_first bias along the last axis when that axis is as long as the channel count
    # (see cases/detection_gaps.yaml): counted as a known framework bug, the search goes on.
    pytest.importorskip("keras")
    entry = {"layer": "DepthwiseConv1D", "input_shape": [2, 3, 11], "dtype": "float32", "seed": 0, "input": "normal",
             "config": {"kernel_size": 3, "strides": 2, "padding": "same", "depth_multiplier": 2,
                        "data_format": "channels_first"}}
    stats = fuzz.search(1, engines=("keras",), seed=None, strategy=st.just(entry))
    assert stats.false_alarms == [], stats.false_alarms
    assert sum(stats.known_bugs.values()) == 1, fuzz.format_stats(stats)
    assert list(stats.known_bugs) == ["keras float32: keras-bias-add-guessed-nhwc"], stats.known_bugs
    assert stats.rechecks == 0, "a known bug should not be re-checked in fresh processes"


def test_yaml_of_an_entry_round_trips():
    entry = {"layer": "SeparableConv2D", "input_shape": [1, 5, 4, 2], "dtype": "bfloat16", "seed": 7,
             "input": {"init": "normal", "std": 4.0},
             "config": {"filters": 3, "kernel_size": [2, 3], "strides": 1, "dilation_rate": 1, "padding": "same",
                        "data_format": "channels_last", "activation": None, "use_bias": True, "depth_multiplier": 2}}
    text = fuzz.to_yaml(entry, "x")
    assert "..." not in text
    loaded = yaml.safe_load("cases:\n" + text)["cases"][0]
    assert {k: loaded[k] for k in entry} == entry


# ---- known bugs from the registry; re-checking the others in fresh processes ----------------------------------
# Plug-ins from tests/fuzz_engines_for_tests.py: no framework, so each fresh process takes well under a second.
RECHECKS = 2


def conv1d(width: int, activation: str | None = "relu") -> dict:
    # relu: the diagnosis names no mistake for the plug-ins' offset (a bias mistake is diagnosed only without an
    # activation), so that each plug-in below alarms with one cause in every configuration
    return {"layer": "Conv1D", "input_shape": [1, width, 1], "dtype": "float32", "seed": 0, "input": "normal",
            "config": {"filters": 1, "kernel_size": 1, "activation": activation}}


WIDTHS = st.integers(1, 12).map(conv1d)
# Linear: an offset of one input position is only "beyond the bound", of two or more "a bias mistake": two causes.
LINEAR_WIDTHS = st.integers(1, 12).map(lambda width: conv1d(width, None))


@pytest.fixture
def plugin():
    """Register a plug-in of tests/fuzz_engines_for_tests.py by function name; reset its module state."""
    wrong.reset()
    yield lambda fn: engines.register_plugin(f"fz_{fn}=fuzz_engines_for_tests:{fn}")
    wrong.reset()


def _yaml_case(text: str, tmp_path) -> object:
    """The first YAML case in a finding's text (its lines from the first '  - id:' on) as a loaded Case."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("  - id:"))
    return load_case(tmp_path, "cases:\n" + "\n".join(lines[start:]) + "\n", "finding.yaml")


def _onednn_depthwise(width: int = 3) -> dict:
    return {"layer": "DepthwiseConv2D", "input_shape": [1, 6, width, 1], "dtype": "float32", "seed": 0,
            "input": "arange", "config": {"kernel_size": 2, "strides": [1, 3], "depth_multiplier": 2}}


def test_a_keras_failure_that_a_registry_entry_explains_is_known_by_its_id():
    # The oneDNN depthwise bug (no mutant reproduces it): known where its condition holds, whatever this CPU runs.
    case = fuzz.to_case(_onednn_depthwise())
    onednn = {"tensorflow": "2.21.0", "onednn": True}
    message = ("keras: max error/bound 3.56e+12 at (0, 2, 0, 0): -33918024 vs 32 oracle "
               "(6 of 10 elements over the bound)")
    assert known.matching_bug("keras", case, onednn, None).id == "tf-onednn-depthwise-unequal-strides-wrong"
    result = Result(case_id=case.id, file=case.file, engine="keras", verdict="fail", message=message, facts=onednn)
    assert fuzz.known_bug(case, result).id == "tf-onednn-depthwise-unequal-strides-wrong"
    # Not known on the Eigen path, nor in another engine, nor for a crash, nor where the output is wider.
    eigen = Result(case_id=case.id, file=case.file, engine="keras", verdict="fail", message=message,
                   facts={"tensorflow": "2.21.0", "onednn": False})
    assert fuzz.known_bug(case, eigen) is None
    assert fuzz.known_bug(case, Result(case.id, case.file, "torch", "fail", message, facts=onednn)) is None
    assert fuzz.known_bug(case, Result(case.id, case.file, "keras", "error", message, facts=onednn)) is None
    wide = fuzz.to_case(_onednn_depthwise(width=6))
    assert fuzz.known_bug(wide, Result(wide.id, wide.file, "keras", "fail", message, facts=onednn)) is None


def test_a_registry_entry_with_a_mutant_needs_the_diagnosis_to_name_it():
    entry = {"layer": "DepthwiseConv1D", "input_shape": [2, 3, 11], "dtype": "float32", "seed": 0, "input": "normal",
             "config": {"kernel_size": 3, "strides": 2, "padding": "same", "depth_multiplier": 2,
                        "data_format": "channels_first"}}
    case = fuzz.to_case(entry)
    facts = {"keras": "3.15.1", "keras_backend": "tensorflow", "keras_layer_format": "channels_first"}
    plain = "keras: max error/bound 40 at (0, 1, 2): 1 vs 0 oracle (9 of 36 elements over the bound) [fuzz.yaml::x]"
    # The message may say anything: the mutant is read from the findings (the first mutant finding).
    said = plain + "; diagnosis: matches the oracle with the bias on the last axis [mutant bias_add_format_guessed]"
    named = [Finding("dtype", "changed-to-float64", "the dtype ..."),
             Finding("mutant", "bias_add_format_guessed", "matches the oracle with ...")]
    assert fuzz.known_bug(case, Result(case.id, case.file, "keras", "fail", said, facts=facts)) is None
    other = [Finding("mutant", "flipped_kernel", "matches the oracle with ... [mutant bias_add_format_guessed]")]
    assert fuzz.known_bug(case, Result(case.id, case.file, "keras", "fail", said, facts=facts, findings=other)) is None
    bug = fuzz.known_bug(case, Result(case.id, case.file, "keras", "fail", plain, facts=facts, findings=named))
    assert bug is not None and bug.id == "keras-bias-add-guessed-nhwc"


def test_known_bugs_are_counted_by_registry_id_without_a_recheck(plugin, monkeypatch):
    name = plugin("offset")
    entry = known.Known(id="test-offset-by-one", engine=name, kind="bug", summary="adds one", repro="-",
                        touches="all", when={}, applies=lambda case: case.layer == "Conv1D")
    monkeypatch.setitem(known.REGISTRY, entry.id, entry)
    stats = fuzz.search(3, engines=(name,), seed=None, strategy=WIDTHS)
    assert stats.findings() == 0 and stats.rechecks == 0, fuzz.format_stats(stats)
    assert stats.known_bugs == {f"{name} float32: test-offset-by-one": 3}, stats.known_bugs
    assert stats.known_example["test-offset-by-one"].startswith("Conv1D [1, "), stats.known_example
    text = fuzz.format_stats(stats)
    assert "test-offset-by-one: adds one" in text and "false alarms: 0 (expected 0)" in text, text


def test_a_deterministic_disagreement_is_a_false_alarm_after_the_recheck(plugin, tmp_path):
    name = plugin("offset")
    stats = fuzz.search(20, engines=(name,), seed=None, strategy=WIDTHS, rechecks=RECHECKS)
    assert len(stats.false_alarms) == 1 and stats.findings() == 1, fuzz.format_stats(stats)
    assert f"reproduced with the same values in {RECHECKS} fresh processes" in stats.false_alarms[0]
    assert stats.rechecks == RECHECKS
    case = _yaml_case(stats.false_alarms[0], tmp_path)
    assert case.input_shape == (1, 1, 1), "shrunk to the narrowest input"


def test_output_that_changes_from_run_to_run_is_nondeterministic_not_a_false_alarm(plugin, tmp_path):
    name = plugin("noisy")
    stats = fuzz.search(20, engines=(name,), seed=None, strategy=WIDTHS, rechecks=RECHECKS)
    assert stats.false_alarms == [] and stats.state_dependent == [], fuzz.format_stats(stats)
    assert len(stats.nondeterministic) == 1, fuzz.format_stats(stats)
    text = stats.nondeterministic[0]
    assert text.startswith(f"nondeterministic in {name}: its output changes from run to run; at (0, 0, 0)"), text
    values = text.split("fresh processes ", 1)[1].split(";", 1)[0].split(", ")
    assert len(values) == RECHECKS and len(set(values)) == RECHECKS, text   # the values each fresh run gave
    assert _yaml_case(text, tmp_path).layer == "Conv1D"
    report = fuzz.format_stats(stats)
    assert f"nondeterministic engine output: {stats.tried} alarms of 1 distinct cause" in report, report
    assert "false alarms: 0 (expected 0)" in report, report


def test_a_disagreement_of_the_fuzzing_process_only_is_state_dependent(plugin, tmp_path):
    name = plugin("wrong_here")
    wrong.WRONG_HERE = True   # this process only: the fresh processes import the module afresh
    stats = fuzz.search(20, engines=(name,), seed=None, strategy=WIDTHS, rechecks=RECHECKS)
    assert stats.false_alarms == [] and stats.nondeterministic == [], fuzz.format_stats(stats)
    assert len(stats.state_dependent) == 1, fuzz.format_stats(stats)
    text = stats.state_dependent[0]
    assert text.startswith("state-dependent: disagreed in the fuzzing process only"), text
    assert _yaml_case(text, tmp_path).input_shape == (1, 1, 1), text
    assert f"state-dependent: {stats.tried} alarms of 1 distinct cause" in fuzz.format_stats(stats)


def test_when_only_the_unshrunk_configuration_reproduces_it_is_the_case_reported(plugin, tmp_path):
    # sticky is wrong from width 8 on in any process, and for everything after that in the same process: hypothesis
    # shrinks to width 1, which a fresh process gets right; the first configuration found reproduces.
    name = plugin("sticky")
    stats = fuzz.search(40, engines=(name,), seed=None, strategy=WIDTHS, rechecks=RECHECKS)
    assert len(stats.false_alarms) == 1 and stats.findings() == 1, fuzz.format_stats(stats)
    text = stats.false_alarms[0]
    assert "the first, unshrunk configuration found" in text, text
    case = _yaml_case(text, tmp_path)
    assert case.input_shape[1] >= wrong.STICKY_WIDTH, text
    assert stats.rechecks == 2 * RECHECKS


# ---- alarms grouped by cause; filters; plug-ins in fuzz workers (issue 9) -----------------------------------

def _alarm(verdict: str, message: str, findings=(), decided_by: str = "", error_type: str = "", reason: str = ""):
    return Result("c", fuzz.FUZZ_FILE, "p", verdict, message=message, findings=list(findings),
                  decided_by=decided_by, error_type=error_type, reason=reason)


def test_the_cause_of_an_alarm_is_its_first_finding_not_its_message():
    flipped = Finding("mutant", "flipped_kernel", "matches the oracle with the kernel flipped ...")
    k2 = Finding("mutant", "same_symmetric", "matches the oracle with 'same' padded symmetrically with k//2 ...")
    one = _alarm("fail", "p: max error/bound 3.29e+07 at (0, 0, 0) [fuzz.yaml::fuzz-1-2]; diagnosis: anything",
                 [flipped], "values")
    other = _alarm("fail", "p: max error/bound 12 at (1, 0, 3, 2) [fuzz.yaml::fuzz-1-9]", [flipped, k2], "values")
    assert fuzz.cause("p", one) == fuzz.cause("p", other) == "p: mutant flipped_kernel"
    permuted = [Finding("pattern", "permuted-channels", "the output channels are permuted (...)")]
    assert fuzz.cause("p", _alarm("fail", "p: m 0<-1, 1<-0", permuted, "values")) == \
        fuzz.cause("p", _alarm("fail", "p: m 0<-2, 1<-0, 2<-1", permuted, "values")) == "p: pattern: permuted-channels"
    # No finding: the check that failed, or the error's type.
    assert fuzz.cause("p", _alarm("fail", "p: max error/bound 4 [fuzz.yaml::a]", decided_by="values")) == \
        "p: wrong values (no known cause)"
    assert fuzz.cause("p", _alarm("fail", "p: output shape=(1, 4, 2) [fuzz.yaml::a]", decided_by="shape")) == \
        fuzz.cause("p", _alarm("fail", "p: output shape=(2, 3) [fuzz.yaml::b]", decided_by="shape"))
    assert fuzz.cause("p", _alarm("error", "p: RuntimeError: the port crashed", error_type="RuntimeError",
                                  reason="the port crashed")) == "p: error: RuntimeError"
    # The first (closest) finding: later ones (which axis a shape differs in) vary with the configuration.
    width = Finding("shape", "width-differ", "the width axis differs: width 2 instead of 1")
    assert fuzz.cause("p", _alarm("fail", "p: output shape=(1, 2)", [k2, width], "shape")) == "p: mutant same_symmetric"
    invalid = Finding("error_cause", "invalid-graph", "the exported graph is invalid; op 7 unknown")
    assert fuzz.cause("p", _alarm("error", "p: InvalidGraph: node 7", [invalid], error_type="InvalidGraph")) == \
        "p: error cause: invalid-graph"


def test_alarms_are_grouped_by_cause_each_with_its_count_and_smallest_example(plugin, tmp_path):
    # The search goes on past the first alarm to its budget; each cause is shrunk once, to its smallest example.
    name = plugin("offset")
    stats = fuzz.search(20, engines=(name,), seed=None, strategy=LINEAR_WIDTHS, rechecks=0)
    causes = stats.causes("false_alarm")
    assert len(causes) == 2 and stats.findings() == 2, fuzz.format_stats(stats)
    assert sum(stats.alarms.values()) == stats.tried > 2, "every configuration alarms, once, under one cause"
    bias = next(c for c in causes if c.endswith("pattern: channel-offset"))
    beyond = next(c for c in causes if c.endswith("wrong values (no known cause)"))
    assert _yaml_case(stats.groups[beyond]["text"], tmp_path).input_shape == (1, 1, 1)
    assert _yaml_case(stats.groups[bias]["text"], tmp_path).input_shape == (1, 2, 1), "the narrowest with 2 positions"
    report = fuzz.format_stats(stats)
    assert f"2 distinct causes, {stats.tried} alarms" in report, report
    assert f"  {stats.alarms[bias]:6d}  false alarm: {bias}" in report, report
    assert f"cause: {bias} ({stats.alarms[bias]} alarms); the smallest example:" in report, report
    assert f"false alarms: {stats.tried} alarms of 2 distinct causes (expected 0" in report, report


def test_the_search_after_an_alarm_is_the_same_from_run_to_run(plugin):
    name = plugin("offset")
    runs = [fuzz.search(20, engines=(name,), seed=seed, strategy=LINEAR_WIDTHS, rechecks=0)
            for seed in (None, None, 3, 3)]
    for a, b in (runs[:2], runs[2:]):
        assert (a.tried, a.alarms, {c: g["size"] for c, g in a.groups.items()}) == \
            (b.tried, b.alarms, {c: g["size"] for c, g in b.groups.items()})


def test_past_max_causes_a_new_cause_is_reported_as_first_found(plugin):
    name = plugin("offset")
    stats = fuzz.search(20, engines=(name,), seed=None, strategy=LINEAR_WIDTHS, rechecks=RECHECKS, max_causes=1)
    assert stats.findings() == 2 and stats.rechecks == RECHECKS, fuzz.format_stats(stats)
    unshrunk = [g["text"] for g in stats.groups.values() if "neither shrunk nor re-checked" in g["text"]]
    assert len(unshrunk) == 1, fuzz.format_stats(stats)


def test_workers_merge_one_cause_into_the_surest_smallest_example():
    def stats(kind: str, size: list[int], count: int) -> fuzz.Stats:
        return fuzz.Stats(alarms={"p: c": count}, groups={"p: c": {"kind": kind, "text": f"{kind} {size}",
                                                                     "size": size}})

    total = fuzz.Stats()
    for part in (stats("false_alarm", [9, 100], 3), stats("false_alarm", [1, 100], 2),
                 stats("state_dependent", [1, 50], 4)):
        total.merge(part)
    assert total.alarms == {"p: c": 9}
    assert total.false_alarms == ["false_alarm [1, 100]"] and total.state_dependent == []


def test_layer_and_dtype_filters_restrict_the_configurations():
    layers, dtypes = fuzz.filters(["SeparableConv2D", "Conv1D"], ["float16"])
    assert layers == ("Conv1D", "SeparableConv2D") and dtypes == ("float16",), "in the strategy's order"
    assert fuzz.filters() == (tuple(LAYERS), fuzz.DTYPES)
    seen = set()

    @settings(max_examples=60, deadline=None, derandomize=True, database=None)
    @given(entry=fuzz.entries(layers, dtypes))
    def collect(entry):
        seen.add((entry["layer"], entry["dtype"]))

    collect()
    assert seen == {("Conv1D", "float16"), ("SeparableConv2D", "float16")}, seen
    stats = fuzz.search(5, engines=("oracle",), seed=None, layers=["DepthwiseConv1D"], dtypes=["float64"])
    assert set(stats.runs) <= {"oracle float64", "oracle:backward float64"} and stats.tried == 5, stats.runs
    assert stats.runs["oracle float64"] == 5, stats.runs


@pytest.mark.parametrize("option, value, said", [
    ("--layer", "Conv4D", "--layer Conv4D: no such layer kind (did you mean Conv3D?); known: Conv1D, Conv2D, "),
    ("--dtype", "float8", "--dtype float8: no such dtype (did you mean float64?); known: float32, float64, "),
])
def test_an_unknown_layer_or_dtype_is_an_error_listing_the_known_ones(option, value, said, capsys):
    from harness.frontends.cli import main

    assert main(["fuzz", "--engine", "oracle", option, value]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {said}"), err


def test_plugins_reach_fuzz_workers(plugin):
    # The plug-in's module is importable here only through sys.path (tests/, put there by tests/conftest.py), not from the
    # current directory: each worker must register it, with this process's import path, and run it.
    name = plugin("offset")
    stats = fuzz.run(6, engines=("oracle", name), jobs=2, progress=False, rechecks=0,
                     layers=["Conv1D"], dtypes=["float64"])
    assert stats.workers == 2 and stats.tried == 6, fuzz.format_stats(stats)
    assert set(stats.alarms) and all(c.startswith(f"{name}: ") and ": error: " not in c for c in stats.alarms), \
        fuzz.format_stats(stats)
    # oracle:backward runs where the configuration drew the backward check (the plug-in computes no gradients)
    assert sum(stats.alarms.values()) == 6 and stats.runs["oracle float64"] == 6, fuzz.format_stats(stats)
    assert set(stats.runs) <= {"oracle float64", "oracle:backward float64"}, fuzz.format_stats(stats)


def test_a_worker_that_cannot_resolve_a_plugin_says_so_in_one_line(capsys):
    payload = {"examples": 1, "engines": ["gone=no_such_module_here:fn"], "seed": 0, "progress": False}
    assert fuzz._main([json.dumps(payload)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --engine 'gone=no_such_module_here:fn': ModuleNotFoundError"), err
