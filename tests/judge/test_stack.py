"""Stacks (harness.judge.stacks): layers in sequence, the bound propagated through them, the culprit named per layer."""
from __future__ import annotations

import re
import textwrap

import numpy as np
import pytest

from harness import engines
from harness.reference import oracle
from harness.cases import schema, stacks as stack_schema
from harness.judge import stacks as stack
from harness.layers.activations import ACTIVATION_TABLE
from harness.engines.torch_engine import to_numpy
from harness.errors import CaseError
from testkit import ROOT

SHIPPED = ROOT / "cases" / "stacks.yaml"

MBV2 = {
    "id": "mbv2",
    "input_shape": [1, 6, 6, 4],
    "layers": [
        {"layer": "Conv2D", "config": {"filters": 12, "kernel_size": 1, "activation": "relu6"},
         "weights": {"kernel": {"init": "normal", "std": 0.7}}},
        {"layer": "DepthwiseConv2D", "config": {"kernel_size": 3, "padding": "same", "activation": "relu6"},
         "weights": {"kernel": {"init": "normal", "std": 0.47}}},
        {"layer": "Conv2D", "config": {"filters": 4, "kernel_size": 1},
         "weights": {"kernel": {"init": "normal", "std": 0.3}}},
    ],
}


def make(entry: dict, file: str = "t.yaml") -> stack.StackCase:
    return stack.stack_from_entry(file, entry)


def port_stack(wrong: int | None = None, how: str = "flip"):
    """A stack function computing with the torch port, layer by layer in the stack's dtype; layer ``wrong`` with
    its kernel flipped (``flip``) or negated (``negate``)."""
    def fn(layers, x):
        import torch

        from harness import torch_port

        name = "bfloat16" if x.dtype.name == "bfloat16" else str(x.dtype)
        tdtype = getattr(torch, name)
        h = torch.from_numpy(np.ascontiguousarray(x.astype(np.float32) if name == "bfloat16" else x))
        h = h.to(tdtype).movedim(-1, 1)
        outs = []
        for i, (layer, config, weights) in enumerate(layers):
            if i == wrong:
                key = "kernel" if "kernel" in weights else "depthwise_kernel"
                rank = weights[key].ndim - 2
                w = weights[key]
                weights = {**weights, key: np.ascontiguousarray(-w if how == "negate" else
                                                                np.flip(w, axis=tuple(range(rank))))}
            module = torch_port.from_keras(layer, config, weights, dtype=tdtype)
            with torch.no_grad():
                h = module(h)
            outs.append(to_numpy(h.movedim(1, -1), name))
        return outs
    return fn


# ---------------------------------------------------------------- loading and the schema

def test_the_shipped_stacks_load_and_the_case_loader_accepts_the_file():
    stacks, errors = stack.load_file(SHIPPED)
    assert not errors, errors
    ids = {s.id for s in stacks}
    assert {"mbv2-inverted-residual", "mbv2-inverted-residual-s2", "xception-separable-stack",
            "conv1d-depthwise-separable-1d"} <= ids, sorted(ids)
    assert {s.dtype for s in stacks} == {"float32", "float16", "bfloat16"}
    mbv2 = next(s for s in stacks if s.id == "mbv2-inverted-residual")
    assert mbv2.summary() == "Conv2D -> DepthwiseConv2D -> Conv2D"
    assert [layer.input_shape for layer in mbv2.layers] == [(1, 8, 8, 8), (1, 8, 8, 48), (1, 8, 8, 48)]
    assert schema.load_file(SHIPPED) == ([], []), "the case loader must accept a file with stacks"


@pytest.mark.parametrize("change, field, words", [
    (lambda e: e["layers"][1]["config"].update(kernel_size="3"), "layers[1].config.kernel_size",
     "must be a positive integer"),
    (lambda e: e["layers"][2]["weights"].update(depthwise_kernel="ones"), "layers[2].weights.depthwise_kernel",
     "has no weight"),
    (lambda e: e["layers"][1].update(layer="Conv1D"), "layers[1]", "takes 3-d input"),
    (lambda e: e["layers"][1]["config"].update(kernel_size=9, padding="valid"), "layers[1]",
     "its input is the output of layers[0], shape [1, 6, 6, 12]"),
    (lambda e: e["layers"][0]["config"].update(data_format="channels_first"), "layers[0].config.data_format",
     "channels_last only"),
    (lambda e: e["layers"][0]["config"].update(activation="exponential"), "layers[0].config.activation",
     "must be one of"),
    (lambda e: e["layers"][2].update(expect={"output_shape": [1]}), "layers[2].expect", "unknown key of a layer"),
    (lambda e: e["layers"][0].pop("config"), "layers[0].config", "missing required key"),
    (lambda e: e["layers"][0]["weights"].update(kernel=[[1.0]]), "layers[0].weights.kernel", "impossible shape"),
    (lambda e: e.update(input=[[1.0]]), "input", "impossible shape"),
    (lambda e: e.update(input_shape=[1, 6, 6, 4, 2]), "input_shape", "takes 4-d input"),
    (lambda e: e.update(dtype="float8"), "dtype", "must be one of"),
    (lambda e: e.update(layers=[]), "layers", "non-empty list"),
    (lambda e: e.update(sweep={"seed": [1, 2]}), "sweep", "unknown key of a stack"),
    (lambda e: e.update(engine_options={"torch": {"depthwise_bias": True}}), "engine_options.torch",
     "no engine takes options in a stack"),
    (lambda e: e.update(skip={"keras": ""}), "skip.keras", "needs the reason"),
    (lambda e: e.update(skip={"kersa": "typo"}), "skip.kersa", "did you mean 'keras'"),
])
def test_schema_errors_name_the_stack_and_the_layer_field(change, field, words):
    entry = {**MBV2, "layers": [{k: (dict(v) if isinstance(v, dict) else v) for k, v in layer.items()}
                                for layer in MBV2["layers"]]}
    change(entry)
    with pytest.raises(CaseError) as caught:
        make(entry)
    error = caught.value
    assert (error.file, error.case, error.field) == ("t.yaml", "mbv2", field), str(error)
    assert words in error.message, f"message={error.message!r}, but should say {words!r}"
    assert str(error).startswith(f"t.yaml::mbv2: {field}: "), str(error)


def test_an_activation_without_a_known_slope_is_refused(monkeypatch):
    monkeypatch.setattr(stack_schema, "slope", lambda name: None if name == "relu6" else 1.0)
    with pytest.raises(CaseError, match=r"layers\[0\]\.config\.activation: 'relu6' has no known slope"):
        make(MBV2)


def test_the_table_declares_each_slope_and_monotonicity_and_the_derivative_agrees():
    """Slope sup |f'| and monotonicity are declared once, in the activation table (no sampling at run time): the
    derivative on a fine grid never exceeds the slope, comes within 0.2% of it, and is negative somewhere exactly
    where the table says f is not monotone."""
    assert [stack.slope(a) for a in ("linear", "relu", "relu6", "tanh", "sigmoid")] == [1, 1, 1, 1, 0.25]
    grid = np.linspace(-64.0, 64.0, 128001)
    for name, act in ACTIVATION_TABLE.items():
        with np.errstate(all="ignore"):
            d = act.derivative(grid)
        assert np.max(np.abs(d)) <= act.slope * (1 + 1e-12), (name, act.slope, np.max(np.abs(d)))
        assert np.max(np.abs(d)) >= 0.998 * act.slope, (name, act.slope, np.max(np.abs(d)))
        assert act.monotone == bool(np.min(d) >= 0.0), name
        assert stack.slope(name) == act.slope and 0 < act.slope <= stack.MAX_SLOPE, name
    assert not hasattr(next(iter(ACTIVATION_TABLE.values())), "lipschitz"), \
        "one name, one meaning: sup |f''| is `curvature`, sup |f'| is `slope`"


def test_duplicate_ids_are_errors(tmp_path):
    text = textwrap.dedent("""\
        cases:
          - {id: same, layer: Conv1D, input_shape: [1, 6, 2], config: {filters: 2, kernel_size: 3}}
        stacks:
          - id: twice
            input_shape: [1, 6, 2]
            layers: [{layer: Conv1D, config: {filters: 2, kernel_size: 3}}]
          - id: twice
            input_shape: [1, 6, 2]
            layers: [{layer: Conv1D, config: {filters: 2, kernel_size: 3}}]
        """)
    (tmp_path / "a.yaml").write_text(text)
    stacks, errors = stack.load_file(tmp_path / "a.yaml", name="a.yaml")
    assert [s.id for s in stacks] == ["twice"]
    assert [str(e) for e in errors] == ["a.yaml::twice: id: duplicate id in this file"]
    (tmp_path / "b.yaml").write_text("stacks:\n  - {id: twice, input_shape: [1, 6, 2], layers: [{layer: Conv1D, "
                                     "config: {filters: 2, kernel_size: 3}}]}\n")
    stacks, errors = stack.load_paths([tmp_path])
    assert [s.id for s in stacks] == ["twice"]
    assert f"{tmp_path / 'b.yaml'}::twice: id: duplicate id, already used in {tmp_path / 'a.yaml'}" in map(str, errors)


def test_the_plugin_shares_ids_between_cases_and_stacks(pytester):
    pytester.makefile(".yaml", one=textwrap.dedent("""\
        cases:
          - {id: same, layer: Conv1D, input_shape: [1, 6, 2], config: {filters: 2, kernel_size: 3}}
        stacks:
          - id: same
            input_shape: [1, 6, 2]
            layers: [{layer: Conv1D, config: {filters: 2, kernel_size: 3}}]
          - id: mine
            input_shape: [1, 6, 2]
            layers: [{layer: Conv1D, config: {filters: 2, kernel_size: 3}}]
        """), two=textwrap.dedent("""\
        stacks:
          - id: mine
            input_shape: [1, 6, 2]
            layers: [{layer: Conv1D, config: {filters: 2, kernel_size: 3}}]
        """))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "--collect-only",
                                           "-q", "--engine", "oracle", "one.yaml", "two.yaml", timeout=120)
    items = {line for line in result.stdout.lines if "::" in line}
    assert items == {"one.yaml::same[oracle]", "one.yaml::same[schema]", "one.yaml::mine[oracle]",
                     "two.yaml::mine[schema]"}, sorted(items)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-q",
                                           "--engine", "oracle", "one.yaml", "two.yaml", timeout=120)
    result.stdout.fnmatch_lines(["*one.yaml::same: id: duplicate id, already used by a case of this file*",
                                 "*two.yaml::mine: id: duplicate id, already used in one.yaml*"])
    result.assert_outcomes(passed=2, failed=2)


# ---------------------------------------------------------------- the reference and the bound

def test_the_oracle_item_is_the_exact_composition():
    s = make(MBV2)
    result = stack.run_stack(s, "oracle")
    assert result.verdict == "pass", result.message
    ref = stack.reference(s)
    z = ref.inputs.x64
    for layer, w, layer_ref in zip(s.layers, ref.inputs.weights64, ref.layers):
        z = oracle.run(layer.layer, layer.config, z, w)   # float64 throughout: no rounding between layers
        assert np.array_equal(z, layer_ref.y)
        assert layer_ref.y.shape == layer.output_shape
    assert [m.max_ratio for m in result.layer_metrics] == [0, 0, 0]


def test_weights_have_a_stream_per_layer():
    two = {**MBV2, "layers": [MBV2["layers"][1], MBV2["layers"][1]],
           "input_shape": [1, 6, 6, 12]}
    inputs = stack.make_inputs(make(two))
    assert not np.array_equal(inputs.weights[0]["kernel"], inputs.weights[1]["kernel"])
    assert inputs.weights[0]["kernel"].dtype == np.float32


def test_a_correct_port_passes_every_layer_well_under_the_bound():
    s = make(MBV2)
    result = stack.run_stack(s, "port", fn=port_stack())
    assert result.verdict == "pass", result.message
    ratios = [m.max_ratio for m in result.layer_metrics]
    assert len(ratios) == 3 and max(ratios) < 0.5, ratios
    assert result.notes[-1].startswith("error/bound per layer: [0] Conv2D "), result.notes


def test_a_wrong_middle_layer_is_named_the_culprit_and_the_last_is_not_blamed():
    s = make(MBV2)
    result = stack.run_stack(s, "flip", fn=port_stack(wrong=1))
    assert (result.verdict, stack.culprit(result)) == ("fail", 1), result.message
    pattern = (r"^flip: layers\[1\] \(DepthwiseConv2D\) max error/bound (\S+) at \(0, \d+, \d+, \d+\): \S+ vs \S+ "
               r"oracle \(\d+ of 432 elements over the bound\) \[t\.yaml::mbv2\]$")
    match = re.match(pattern, result.message)
    assert match, f"message={result.message!r}, but should match {pattern!r}"
    assert float(match.group(1)) > 100
    assert "layers[2]" not in result.message
    assert result.layer_metrics[0].max_ratio < 0.5 and len(result.layer_metrics) == 2
    assert result.notes[-1].endswith("[1] DepthwiseConv2D " + f"{result.layer_metrics[1].max_ratio:.3g} (culprit), "
                                     "[2] Conv2D not judged (reads the culprit's output)"), result.notes
    assert result.repro == "python -m harness run t.yaml --case mbv2 --engine oracle --engine flip"


def test_a_wrong_shape_or_dtype_is_a_culprit_too():
    s = make(MBV2)
    good = port_stack()

    def float64_first(layers, x):
        ys = good(layers, x)
        return [ys[0].astype(np.float64), *ys[1:]]

    result = stack.run_stack(s, "wide", fn=float64_first)
    assert stack.culprit(result) == 0 and "wide: layers[0] (Conv2D) output dtype=float64, but should be float32" \
        in result.message, result.message
    result = stack.run_stack(s, "short", fn=lambda layers, x: good(layers, x)[:2])
    assert result.verdict == "fail" and "layer outputs=2, but should be 3 (one per layer)" in result.message


def random_stack(rng: np.random.Generator, n: int) -> dict:
    """A random 2D stack of 2 to 4 layers: conv, depthwise and separable, kernels 1-3, strides 1-2, both
    paddings, five activations, He-like weight scales."""
    batch, size, channels = int(rng.integers(1, 3)), int(rng.integers(6, 10)), int(rng.integers(2, 6))
    entry = {"id": f"random-{n}", "input_shape": [batch, size, size, channels], "seed": n, "layers": []}
    for _ in range(int(rng.integers(2, 5))):
        kind = str(rng.choice(["Conv2D", "DepthwiseConv2D", "SeparableConv2D"]))
        k = int(rng.integers(1, 4))
        padding = "valid" if rng.random() < 0.5 and size >= k + 2 else "same"
        strides = 2 if rng.random() < 0.25 and size >= 4 else 1
        config = {"kernel_size": k, "padding": padding, "strides": strides,
                  "activation": str(rng.choice(["relu", "relu6", "linear", "tanh", "sigmoid"]))}
        he = {"taps": float(np.sqrt(2 / k ** 2)), "conv": float(np.sqrt(2 / (k ** 2 * channels))),
              "pointwise": float(np.sqrt(2 / channels))}
        if kind == "DepthwiseConv2D":
            config["depth_multiplier"] = int(rng.integers(1, 3))
            weights = {"kernel": {"init": "normal", "std": he["taps"]}}
        elif kind == "Conv2D":
            config["filters"] = int(rng.integers(2, 9))
            weights = {"kernel": {"init": "normal", "std": he["conv"]}}
        else:
            config["filters"] = int(rng.integers(2, 9))
            weights = {"depthwise_kernel": {"init": "normal", "std": he["taps"]},
                       "pointwise_kernel": {"init": "normal", "std": he["pointwise"]}}
        weights["bias"] = {"init": "normal", "std": 0.1}
        entry["layers"].append({"layer": kind, "config": config, "weights": weights})
        channels = config.get("filters") or channels * config["depth_multiplier"]
        size = -(-size // strides) if padding == "same" else (size - k) // strides + 1
    return entry


def test_the_propagated_bound_holds_on_random_float32_stacks_and_a_wrong_layer_exceeds_it():
    rng = np.random.default_rng(2024)
    worst, smallest_caught = 0.0, np.inf
    for n in range(50):
        s = make(random_stack(rng, n))
        right = stack.run_stack(s, "port", fn=port_stack())
        assert right.verdict == "pass", f"false alarm on random stack {n} ({s.summary()}): {right.message}"
        worst = max(worst, *(m.max_ratio for m in right.layer_metrics))
        wrong_layer = int(rng.integers(0, len(s.layers)))
        wrong = stack.run_stack(s, "negated", fn=port_stack(wrong=wrong_layer, how="negate"))
        assert (wrong.verdict, stack.culprit(wrong)) == ("fail", wrong_layer), f"random stack {n}: {wrong.message}"
        smallest_caught = min(smallest_caught, wrong.metrics.max_ratio)
    assert worst <= 1.0
    assert smallest_caught > 100, f"a negated kernel exceeded its bound by only {smallest_caught:.3g}x"


def test_an_unusable_bound_is_a_skip_that_says_where():
    stacks, _ = stack.load_file(SHIPPED, name="cases/stacks.yaml")
    xception = next(s for s in stacks if s.id == "xception-separable-stack")
    xception = make({**xception.source, "id": "x-bf16", "dtype": "bfloat16"}, "cases/stacks.yaml")
    result = stack.run_stack(xception, "torch")
    assert result.verdict == "skip", result.message
    assert re.match(r"torch: no usable error bound at layers\[1\] \(SeparableConv2D\): the propagated bound is at "
                    r"least \|y\| at every element", result.message), result.message
    assert stack.run_stack(xception, "oracle").verdict == "pass"


def test_engines_that_compute_one_layer_skip_stacks_with_the_reason():
    result = stack.run_stack(make(MBV2), "keras-jax")
    assert result.verdict == "skip"
    assert "keras-jax computes one layer per request; stacks run in oracle, keras, torch" in result.message


def test_a_stack_skips_an_engine_it_names():
    result = stack.run_stack(make({**MBV2, "skip": {"torch": "not today"}}), "torch")
    assert (result.verdict, result.message) == ("skip", "case skips torch: not today")


# ---------------------------------------------------------------- pytest and the command line

PLUGIN = '''
import numpy as np
from harness.reference import oracle


def _stack(wrong):
    def stack(layers, x):
        outs, z = [], x
        for i, (layer, config, weights) in enumerate(layers):
            w = {k: v.astype(np.float64) for k, v in weights.items()}
            if i == wrong:
                w["kernel"] = np.flip(w["kernel"], axis=(0, 1))
            z = oracle.run(layer, config, z.astype(np.float64), w).astype(x.dtype)
            outs.append(z)
        return outs
    return stack


def right(layer, config, x, weights):
    raise NotImplementedError("stacks only")


def flipped(layer, config, x, weights):
    raise NotImplementedError("stacks only")


right.stack = _stack(None)
flipped.stack = _stack(1)
'''

STACKS = textwrap.dedent("""\
    stacks:
      - id: block
        input_shape: [1, 6, 6, 4]
        layers:
          - {layer: Conv2D, config: {filters: 12, kernel_size: 1, activation: relu6}}
          - {layer: DepthwiseConv2D, config: {kernel_size: 3, padding: same, activation: relu6}}
          - {layer: Conv2D, config: {filters: 4, kernel_size: 1}}
    """)


def test_a_plugin_stack_function_fails_on_its_culprit_under_pytest_and_the_repro_reproduces(pytester):
    pytester.makepyfile(stack_plugins=PLUGIN)
    pytester.makefile(".yaml", stacks=STACKS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-ra",
                                           "--engine", "oracle", "--engine", "stack_plugins:right", "--engine",
                                           "stack_plugins:flipped", "stacks.yaml", timeout=120)
    result.assert_outcomes(passed=2, failed=1)
    out = result.stdout.str()
    assert re.search(r"flipped: layers\[1\] \(DepthwiseConv2D\) max error/bound \S+ at \(0, \d+, \d+, \d+\): \S+ vs "
                     r"\S+ oracle \(\d+ of 432 elements over the bound\) \[stacks\.yaml::block\]", out), out
    assert "repro: python -m harness run stacks.yaml --case block --engine oracle --engine " \
           "flipped=stack_plugins:flipped" in out, out
    assert "Traceback" not in out
    repro = re.search(r"repro: python (-m harness run stacks\.yaml .*)$", out, re.M).group(1).split()
    done = pytester.run(__import__("sys").executable, *repro, timeout=120)
    assert done.ret == 1, done.stdout.str()
    text = done.stdout.str()
    assert "stacks.yaml::block  stack Conv2D -> DepthwiseConv2D -> Conv2D [1, 6, 6, 4] float32" in text, text
    assert re.search(r"^flipped\s+FAIL .* flipped: layers\[1\] \(DepthwiseConv2D\) max error/bound", text, re.M), text
    assert "0 cases, 1 stacks, 1 failing (case, engine) pairs, 0 invalid cases" in text, text


def test_harness_run_runs_a_stack_by_its_id(tmp_path, capsys, monkeypatch):
    from harness.frontends import cli

    (tmp_path / "s.yaml").write_text(STACKS)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["run", "s.yaml", "--case", "block", "--engine", "oracle", "--engine", "torch"]) == 0
    out = capsys.readouterr().out
    assert "s.yaml::block  stack Conv2D -> DepthwiseConv2D -> Conv2D [1, 6, 6, 4] float32" in out, out
    assert re.search(r"torch: error/bound per layer: \[0\] Conv2D \S+, \[1\] DepthwiseConv2D \S+, \[2\] Conv2D", out)
    assert out.rstrip().endswith("0 cases, 1 stacks, 0 failing (case, engine) pairs, 0 invalid cases"), out
    assert cli.main(["run", "s.yaml", "--case", "nope", "--engine", "oracle"]) == 2   # no such case or stack
    assert "--case nope: no such case in s.yaml" in capsys.readouterr().err


# ---------------------------------------------------------------- stacks are cases: engines, loader, mutants, lint

def test_engines_say_whether_they_compute_sequences():
    """A trait, as computes_gradients: the engines that compute a stack say so, and the stack runner asks it (no
    hard-coded engine names); a plug-in does where its callable has a `stack` attribute, else it skips saying so."""
    assert engines.sequence_engines() == ["oracle", "keras", "torch"]
    for name in engines.BUILTIN:
        cls = engines.engine_class(name)
        overrides = cls.run_sequence is not engines.Engine.run_sequence
        assert cls.computes_sequences == overrides, name
    s = make(MBV2)
    plain = engines.FunctionEngine("plain", lambda layer, config, x, weights: x)
    with pytest.raises(NotImplementedError, match="plug-in plain computes one layer per request"):
        plain.run_sequence(stack.sequence_request(s, stack.reference(s).inputs))


def test_each_file_is_parsed_once(tmp_path, monkeypatch):
    """One loader for a file with `cases:`, `stacks:` or both: the YAML is parsed once, whatever it holds."""
    (tmp_path / "both.yaml").write_text(textwrap.dedent("""\
        cases:
          - {id: c, layer: Conv1D, input_shape: [1, 6, 2], config: {filters: 2, kernel_size: 3}}
        stacks:
          - id: s
            input_shape: [1, 6, 2]
            layers: [{layer: Conv1D, config: {filters: 2, kernel_size: 3}}]
        """))
    parsed = []
    real = schema._parse   # what every YAML read goes through (schema.load_yaml)
    monkeypatch.setattr(schema, "_parse", lambda path, loader: parsed.append(path) or real(path, loader))
    suite = stack.load_suite([tmp_path])
    assert [c.id for c in suite.cases] == ["c"] and [s.id for s in suite.stacks] == ["s"], suite
    assert len(parsed) == 1, parsed


def test_a_mutant_in_one_layer_of_a_stack_is_killed_and_the_culprit_named():
    """The mutation sweep runs stacks: a mutant applied to one layer (the others by the correct port) is caught, and
    the failure names that layer; where the bug changes nothing (a flip of a 1x1 kernel) it is no kill."""
    from harness.mutation import score

    s = score.sweep([], ["flipped_kernel", "bias_dropped"], ["numpy_port"], stacks=[make(MBV2)])
    assert s.killers["flipped_kernel"] == ["mbv2"], dict(s.killers)
    assert s.kind_killers["flipped_kernel"]["DepthwiseConv2D"] == ["mbv2 layers[1]"]
    assert not s.kind_killers["flipped_kernel"]["Conv2D"]   # both convs are 1x1: flipping changes nothing
    # a dropped bias in any one layer, the first and the last included, is caught there
    assert s.kind_killers["bias_dropped"]["Conv2D"] == ["mbv2 layers[0]", "mbv2 layers[2]"], dict(s.kind_killers)
    assert s.kind_killers["bias_dropped"]["DepthwiseConv2D"] == ["mbv2 layers[1]"]
    assert not s.misnamed and not s.errors and not s.survivors, (s.misnamed, s.errors)
    assert not s.control_failures and s.verdicts["numpy_port"]["pass"] == 1, s.verdicts
    text = score.format_score(s)
    assert "0 cases and 1 stacks (a mutant in each layer)" in text, text
    # the mutant as a plug-in engine on the whole stack: the first layer it changes is the culprit
    from harness.mutation import mutants

    result = stack.run_stack(make(MBV2), "flipped_kernel", fn=mutants.flipped_kernel.stack)
    assert (result.verdict, stack.culprit(result)) == ("fail", 1), result.message


def test_lint_judges_a_stack():
    from harness.audit.lint import format_lint, lint

    weak_entry = {**MBV2, "id": "ones", "input": "ones",
                  "layers": [{"layer": "Conv2D", "config": {"filters": 4, "kernel_size": 1, "use_bias": False},
                              "weights": {"kernel": "ones"}}]}
    entries, s = lint([], [make(MBV2), make(weak_entry)])
    by_id = {e.case.id: e for e in entries}
    assert {"flipped_kernel", "bias_dropped"} <= set(by_id["mbv2"].kills) and not by_id["mbv2"].weak
    assert by_id["ones"].weak and any("constant input" in h for h in by_id["ones"].hints), by_id["ones"].hints
    text = format_lint(entries, s)
    assert "ok   t.yaml::mbv2: kills" in text and "WEAK t.yaml::ones: kills no mutant" in text, text
    assert "0 cases and 2 stacks linted" in text, text


def test_the_report_shows_the_culprit(tmp_path):
    from harness.report import html
    from harness.report.collect import collect
    from harness.report.results_json import document

    one = make(MBV2)
    flipped = engines.register_plugin("flipped_kernel=harness.mutation.mutants:flipped_kernel")
    got = collect([one], ["oracle", flipped])
    exact, wrong = got.records
    assert exact["culprit"] is None and exact["layer_ratios"] == [0, 0, 0] and exact["layer"].startswith("stack: ")
    assert wrong["verdict"] == "fail" and wrong["culprit"] == 1 and wrong["layer_ratios"][1] > 1, wrong
    doc = document(cases=got.cases, records=got.records, engines=["oracle", flipped], invalid=[], environment={},
                   created="", paths=[], command=[], duration_s=0.0, baseline=None)
    data, _ = html.page_data(doc, {})
    assert [layer["layer"] for layer in data["cases"][0]["stack"]] == ["Conv2D", "DepthwiseConv2D", "Conv2D"]
    assert "function stackTable" in (ROOT / "harness" / "report" / "static" / "case.js").read_text()
