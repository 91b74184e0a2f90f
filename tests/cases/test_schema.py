"""Case files: every malformed input gives a CaseError naming file, case, field and problem; YAML is safe."""
import os
import textwrap

import pytest

from harness.errors import CaseError
from harness.cases.schema import load_file, load_paths
from testkit import write_yaml

GOOD = """\
  - id: good
    layer: Conv1D
    input_shape: [1, 5, 2]
    config: {filters: 3, kernel_size: 3}
"""


def write(tmp_path, text, name="cases.yaml"):
    return write_yaml(tmp_path, textwrap.dedent(text), name)


def load_one_error(tmp_path, text, name="cases.yaml"):
    path = write(tmp_path, text, name)
    cases, errors = load_file(path)
    assert len(errors) == 1, f"errors={[str(e) for e in errors]}, but should be exactly one"
    return path, cases, errors[0]


def assert_names(error, path, case, field, *words):
    text = str(error)
    assert isinstance(error, CaseError)
    assert error.file == str(path), f"error.file={error.file}, but should be {path}"
    assert error.case == case, f"error.case={error.case}, but should be {case}"
    assert error.field == field, f"error.field={error.field}, but should be {field}"
    for part in (str(path), *([case] if case else []), field or "", *words):
        assert part in text, f"error text {text!r} should contain {part!r}"


def case_file(entry, extra=""):
    """A file with one good case and the entry under test (indented as a list item)."""
    return "cases:\n" + GOOD + textwrap.indent(textwrap.dedent(entry), "  ") + extra


# ------------------------------------------------------------------------------------------ errors

def test_unknown_top_level_key(tmp_path):
    path, cases, err = load_one_error(tmp_path, "cases: []\noptions: {fast: true}\n")
    assert_names(err, path, None, "options", "unknown top-level key")


def test_unknown_case_key(tmp_path):
    path, cases, err = load_one_error(tmp_path, case_file("""\
        - id: typo
          layer: Conv1D
          input_shape: [1, 5, 2]
          config: {filters: 3, kernel_size: 3}
          wieghts: {kernel: ones}
        """))
    assert_names(err, path, "typo", "wieghts", "unknown key")
    assert [c.id for c in cases] == ["good"], "the good case of the file should still load"


def test_unknown_config_key(tmp_path):
    path, cases, err = load_one_error(tmp_path, case_file("""\
        - id: cfg
          layer: Conv2D
          input_shape: [1, 5, 5, 2]
          config: {filters: 3, kernel_size: 3, kernal_initializer: ones}
        """))
    assert_names(err, path, "cfg", "config.kernal_initializer", "not an argument of Conv2D")
    assert [c.id for c in cases] == ["good"]


def test_wrong_type(tmp_path):
    path, cases, err = load_one_error(tmp_path, case_file("""\
        - id: strk
          layer: Conv1D
          input_shape: [1, 5, 2]
          config: {filters: 3, kernel_size: "3"}
        """))
    assert_names(err, path, "strk", "config.kernel_size", "must be a positive integer", "'3'")


def test_causal_on_conv2d(tmp_path):
    path, cases, err = load_one_error(tmp_path, case_file("""\
        - id: causal2d
          layer: Conv2D
          input_shape: [1, 5, 5, 2]
          config: {filters: 3, kernel_size: 3, padding: causal}
        """))
    assert_names(err, path, "causal2d", "config.padding", "valid | same", "causal")


def test_kernel_larger_than_input(tmp_path):
    path, cases, err = load_one_error(tmp_path, case_file("""\
        - id: toobig
          layer: Conv1D
          input_shape: [1, 2, 2]
          config: {filters: 3, kernel_size: 3, padding: valid}
        """))
    assert_names(err, path, "toobig", "input_shape", "impossible shape")


def test_dilated_kernel_larger_than_input(tmp_path):
    # k=3, d=2: effective kernel 5 > 4.
    path, cases, err = load_one_error(tmp_path, case_file("""\
        - id: dil
          layer: DepthwiseConv2D
          input_shape: [1, 4, 9, 2]
          config: {kernel_size: 3, dilation_rate: 2}
        """))
    assert_names(err, path, "dil", "input_shape", "impossible shape")


def test_explicit_weight_of_wrong_shape(tmp_path):
    # Conv1D k=2, C=1, F=1 needs a (2, 1, 1) kernel; (3, 1, 1) is given.
    path, cases, err = load_one_error(tmp_path, case_file("""\
        - id: wshape
          layer: Conv1D
          input_shape: [1, 4, 1]
          config: {filters: 1, kernel_size: 2}
          weights: {kernel: [[[1]], [[2]], [[3]]]}
        """))
    assert_names(err, path, "wshape", "weights.kernel", "impossible shape", "[3, 1, 1]", "[2, 1, 1]")


def test_ragged_explicit_input(tmp_path):
    path, cases, err = load_one_error(tmp_path, case_file("""\
        - id: ragged
          layer: Conv1D
          input_shape: [1, 2, 2]
          config: {filters: 1, kernel_size: 1}
          input: [[[1, 2], [3]]]
        """))
    assert_names(err, path, "ragged", "input", "rectangular")


def test_duplicate_id_in_a_file(tmp_path):
    path, cases, err = load_one_error(tmp_path, case_file("""\
        - id: good
          layer: Conv1D
          input_shape: [1, 5, 2]
          config: {filters: 1, kernel_size: 1}
        """))
    assert_names(err, path, "good", "id", "duplicate")
    assert len(cases) == 1


def test_duplicate_id_across_files(tmp_path):
    a = write(tmp_path, "cases:\n" + GOOD, "a.yaml")
    b = write(tmp_path, "cases:\n" + GOOD.replace("filters: 3", "filters: 2"), "b.yaml")
    cases, errors = load_paths([tmp_path])
    assert len(errors) == 1, [str(e) for e in errors]
    assert_names(errors[0], b, "good", "id", "duplicate", str(a))
    assert [(c.id, c.file) for c in cases] == [("good", str(a))]


def test_bias_when_use_bias_is_false(tmp_path):
    path, cases, err = load_one_error(tmp_path, case_file("""\
        - id: nobias
          layer: SeparableConv1D
          input_shape: [1, 5, 2]
          config: {filters: 3, kernel_size: 3, use_bias: false}
          weights: {bias: zeros}
        """))
    assert_names(err, path, "nobias", "weights.bias", "use_bias is false")


def test_weight_the_layer_does_not_have(tmp_path):
    # Keras 3 DepthwiseConv2D calls its kernel 'kernel', not 'depthwise_kernel'.
    path, cases, err = load_one_error(tmp_path, case_file("""\
        - id: dwname
          layer: DepthwiseConv2D
          input_shape: [1, 5, 5, 2]
          config: {kernel_size: 3}
          weights: {depthwise_kernel: ones}
        """))
    assert_names(err, path, "dwname", "weights.depthwise_kernel", "no weight")


@pytest.mark.parametrize("missing", ["layer", "input_shape", "config"])
def test_missing_required_key(tmp_path, missing):
    entry = {"layer": "  layer: Conv1D\n", "input_shape": "  input_shape: [1, 5, 2]\n",
             "config": "  config: {filters: 3, kernel_size: 3}\n"}
    del entry[missing]
    path, cases, err = load_one_error(tmp_path, case_file("- id: miss\n" + "".join(entry.values())))
    assert_names(err, path, "miss", missing, "missing required key")


def test_missing_id_names_the_position(tmp_path):
    path, cases, err = load_one_error(tmp_path, case_file("""\
        - layer: Conv1D
          input_shape: [1, 5, 2]
          config: {filters: 3, kernel_size: 3}
        """))
    assert_names(err, path, "#2", "id", "missing required key")


def test_missing_required_config_argument(tmp_path):
    path, cases, err = load_one_error(tmp_path, case_file("""\
        - id: nofilters
          layer: Conv2D
          input_shape: [1, 5, 5, 2]
          config: {kernel_size: 3}
        """))
    assert_names(err, path, "nofilters", "config.filters", "required by Conv2D")


def test_bad_dtype(tmp_path):
    path, cases, err = load_one_error(tmp_path, case_file("""\
        - id: f8
          layer: Conv1D
          input_shape: [1, 5, 2]
          config: {filters: 3, kernel_size: 3}
          dtype: float8
        """))
    assert_names(err, path, "f8", "dtype", "float8")


def test_groups_must_divide(tmp_path):
    path, cases, err = load_one_error(tmp_path, case_file("""\
        - id: grp
          layer: Conv1D
          input_shape: [1, 5, 3]
          config: {filters: 4, kernel_size: 1, groups: 2}
        """))
    assert_names(err, path, "grp", "config.groups", "divide")


def test_bad_yaml_syntax(tmp_path):
    path, cases, err = load_one_error(tmp_path, "cases:\n  - id: x\n    config: {filters: 3\n")
    assert cases == []
    assert_names(err, path, None, None, "cannot read YAML")
    assert "\n" not in str(err), "the error should be one line"


def test_one_bad_case_does_not_stop_the_others(tmp_path):
    path = write(tmp_path, """\
        cases:
          - id: first
            layer: Conv1D
            input_shape: [1, 5, 2]
            config: {filters: 3, kernel_size: 3}
          - id: broken
            layer: ConvLSTM2D
            input_shape: [1, 5, 2]
            config: {filters: 3, kernel_size: 3}
          - 42
          - id: last
            layer: DepthwiseConv1D
            input_shape: [1, 5, 2]
            config: {kernel_size: 3}
        """)
    cases, errors = load_file(path)
    assert [c.id for c in cases] == ["first", "last"], f"loaded {[c.id for c in cases]}"
    assert [(e.case, e.field) for e in errors] == [("broken", "layer"), ("#3", None)], [str(e) for e in errors]


# ------------------------------------------------------------------------------------ defaults, sweeps

def test_sweep_expansion_ids(tmp_path):
    path = write(tmp_path, """\
        cases:
          - id: base
            layer: Conv2D
            input_shape: [1, 6, 6, 2]
            config: {filters: 2, kernel_size: 3}
            sweep: {strides: [1, 2], padding: [valid, same], dtype: [float32]}
        """)
    cases, errors = load_file(path)
    assert errors == []
    want = ["base(strides=1,padding=valid,dtype=float32)", "base(strides=1,padding=same,dtype=float32)",
            "base(strides=2,padding=valid,dtype=float32)", "base(strides=2,padding=same,dtype=float32)"]
    assert [c.id for c in cases] == want
    c = cases[3]
    assert c.config == {"filters": 2, "kernel_size": 3, "strides": 2, "padding": "same"}, c.config
    assert c.swept == {"strides": 2, "padding": "same", "dtype": "float32"}
    assert "sweep" in c.source and c.source["id"] == "base", "source should be the entry as written"


def test_sweep_of_lists_and_plain_id(tmp_path):
    path = write(tmp_path, """\
        cases:
          - id: base
            layer: Conv2D
            input_shape: [1, 6, 6, 2]
            config: {filters: 2, kernel_size: 3}
            sweep: {strides: [2, [1, 2]], padding: [same]}
        """)
    cases, errors = load_file(path)
    assert errors == []
    assert [c.id for c in cases] == ["base(strides=2,padding=same)", "base(strides=1x2,padding=same)"]


def test_sweep_point_that_is_invalid_names_its_point(tmp_path):
    path, cases, err = load_one_error(tmp_path, case_file("""\
        - id: sw
          layer: Conv1D
          input_shape: [1, 4, 2]
          config: {filters: 3, kernel_size: 3}
          sweep: {padding: [same, causal, full]}
        """))
    assert_names(err, path, "sw(padding=full)", "config.padding", "full")


def test_defaults_merged_key_by_key(tmp_path):
    path = write(tmp_path, """\
        defaults:
          layer: Conv1D
          dtype: float64
          seed: 7
          config: {filters: 4, kernel_size: 3, padding: same}
          weights: {bias: zeros}
        cases:
          - id: a
            input_shape: [1, 5, 2]
            config: {kernel_size: 5}
          - id: b
            layer: DepthwiseConv1D
            input_shape: [1, 5, 2]
            dtype: float32
            config: {filters: null}
        """)
    cases, errors = load_file(path)
    assert [str(e) for e in errors] == [f"{path}::b: config.filters: not an argument of DepthwiseConv1D; "
                                        "accepted: activation, data_format, depth_multiplier, dilation_rate, "
                                        "kernel_size, padding, strides, use_bias"]
    (a,) = cases
    assert a.config == {"filters": 4, "kernel_size": 5, "padding": "same"}, a.config
    assert (a.layer, a.dtype, a.seed, a.weights) == ("Conv1D", "float64", 7, {"bias": "zeros"})


def test_defaults_apply_to_every_case(tmp_path):
    path = write(tmp_path, """\
        defaults:
          layer: DepthwiseConv2D
          input_shape: [1, 4, 4, 3]
          config: {kernel_size: 2, depth_multiplier: 2}
        cases:
          - {id: one}
          - {id: two, config: {strides: 2}}
        """)
    cases, errors = load_file(path)
    assert errors == []
    assert [c.config for c in cases] == [{"kernel_size": 2, "depth_multiplier": 2},
                                         {"kernel_size": 2, "depth_multiplier": 2, "strides": 2}]
    assert cases[1].geometry.out_channels == 6


def test_line_numbers_recorded(tmp_path):
    path = write(tmp_path, "cases:\n" + GOOD)
    (case,), _ = load_file(path)
    assert case.line == 2, f"line={case.line}, but should be 2"
    assert "__line__" not in case.config and "__line__" not in case.source


# ------------------------------------------------------------------------------------------ YAML safety

@pytest.mark.parametrize("payload", [
    '!!python/object/apply:os.system ["touch {marker}"]',
    "!!python/name:os.system",
    '!!python/object/apply:subprocess.check_call [["touch", "{marker}"]]',
    "!!python/object/new:os.system [touch {marker}]",
])
@pytest.mark.parametrize("where", ["top", "config"])
def test_python_tags_are_refused(tmp_path, monkeypatch, payload, where):
    marker = tmp_path / "pwned"
    calls = []
    monkeypatch.setattr(os, "system", lambda *a: calls.append(a) or 0)
    tag = payload.format(marker=marker)
    if where == "top":
        text = f"cases: {tag}\n"
    else:
        text = ("cases:\n  - id: evil\n    layer: Conv1D\n    input_shape: [1, 5, 2]\n"
                f"    config:\n      filters: 3\n      kernel_size: 3\n      padding: {tag}\n")
    path, cases, err = load_one_error(tmp_path, text)
    assert cases == []
    assert "cannot read YAML" in str(err) and str(path) in str(err), str(err)
    assert "python/" in str(err), f"the error should name the refused tag: {err}"
    assert calls == [] and not marker.exists(), "a YAML tag constructed a Python object"


@pytest.mark.parametrize("extra, field, words", [
    ("    skip: {kersa: typo}\n", "skip.kersa", ["did you mean 'keras'"]),
    ("    xfail: {torhc: typo}\n", "xfail.torhc", ["did you mean 'torch'"]),
    ("    engine_options: {torch: {depthwise_bias: true}}\n", "engine_options.torch.depthwise_bias",
     ["separable layers only"]),
    ("    engine_options: {torch: {depthwise_bais: true}}\n", "engine_options.torch.depthwise_bais", ["unknown option"]),
    ("    engine_options: {keras: {x: 1}}\n", "engine_options.keras", ["only these engines take options"]),
    ("    expect: {output_at: [{index: [0, 9], value: 1}]}\n", "expect.output_at[0].index", ["impossible index"]),
    ("    expect: {output: [[1, 2]]}\n", "expect.output", ["impossible shape", "[1, 3, 3]"]),
    ("    expect: {rejected_by: keras}\n", "expect.rejected_by", ["list of engine names"]),
])
def test_engine_names_options_and_golden_shapes_are_checked(tmp_path, extra, field, words):
    path, cases, error = load_one_error(tmp_path, "cases:\n" + GOOD + extra)
    assert_names(error, path, "good", field, *words)


def test_a_plugin_name_and_upper_case_padding_are_accepted(tmp_path):
    text = "cases:\n" + GOOD.replace("kernel_size: 3}", "kernel_size: 3, padding: SAME}") + "    skip: {myport: wip}\n"
    cases, errors = load_file(write(tmp_path, text))
    assert not errors and cases[0].geometry.padding == "same", errors


# ------------------------------------------------------------------------------------------ expect in every check

PASS_THROUGH = """\
cases:
  - id: through
    layer: Conv1D
    input_shape: [1, 3, 1]
    config: {filters: 1, kernel_size: 1}
    input: ones
    weights: {kernel: ones, bias: zeros}
    check: [backward]
"""


@pytest.mark.parametrize("expect, words", [
    ("{output: [[[5], [5], [5]]]}", "expect.output"),
    ("{output_at: [{index: [0, 1], value: [7]}]}", "expect.output"),
    ("{output_shape: [1, 3, 2]}", "output shape"),
    ("{params: 99}", "params=2, but should be 99"),
    ("{weight_shapes: {kernel: [1, 1, 2], bias: [1]}}", "weight shapes"),
])
def test_forward_facts_are_judged_in_a_backward_only_case(tmp_path, expect, words):
    """The README: expect facts are checked in every engine; a case that checks only the gradients still judges
    them (on the output of the backward run), instead of passing them silently."""
    from harness.judge.runner import run_one

    cases, errors = load_file(write(tmp_path, PASS_THROUGH + f"    expect: {expect}\n"))
    assert not errors, errors
    r = run_one(cases[0], "oracle", "backward")
    assert r.verdict == "fail" and words in r.message, f"verdict={r.verdict}, message={r.message!r}: should fail " \
                                                       f"on {words!r}"


def test_right_forward_facts_pass_in_a_backward_only_case(tmp_path):
    from harness.judge.runner import run_one

    cases, errors = load_file(write(tmp_path, PASS_THROUGH + "    expect: {output: [[[1], [1], [1]]], params: 2, "
                                              "output_shape: [1, 3, 1]}\n"))
    assert not errors, errors
    r = run_one(cases[0], "oracle", "backward")
    assert r.verdict == "pass", r.message
