"""Coverage table and lint: what the cases exercise, what they miss, and which cases are weak."""
from __future__ import annotations


from harness.frontends import cli
from harness.audit.coverage import coverage_table, format_coverage
from harness.audit.lint import format_lint, lint
from harness.cases.schema import load_paths
from testkit import CASES, load_cases, write_yaml


TWO_CONV2D = """\
cases:
  - id: plain
    layer: Conv2D
    input_shape: [1, 5, 5, 2]
    config: {filters: 3, kernel_size: 3}
  - id: fancy
    layer: Conv2D
    input_shape: [2, 3, 6, 7]
    dtype: float64
    config: {filters: 3, kernel_size: [2, 3], strides: [1, 2], padding: same, data_format: channels_first,
             activation: relu, groups: 3}
"""

LINT = """\
cases:
  - id: weak-ones
    layer: Conv2D
    input_shape: [1, 4, 4, 1]
    config: {filters: 1, kernel_size: 2, use_bias: false}
    input: ones
    weights: {kernel: ones}
  - id: weak-but-golden
    layer: Conv2D
    input_shape: [1, 3, 3, 1]
    config: {filters: 1, kernel_size: 2, use_bias: false}
    input: ones
    weights: {kernel: ones}
    expect: {output: [[[[4], [4]], [[4], [4]]]]}
  - id: strong
    layer: Conv2D
    input_shape: [2, 6, 5, 3]
    config: {filters: 4, kernel_size: [3, 2], strides: 2, padding: same}
"""


def row(table, layer, parameter):
    return next(r for r in table[layer]["parameters"] if r["parameter"] == parameter)


def test_coverage_counts_values_and_lists_what_is_missing(tmp_path):
    table = coverage_table(load_cases(tmp_path, TWO_CONV2D))
    assert table["Conv2D"]["cases"] == 2 and table["Conv1D"]["cases"] == 0
    strides = row(table, "Conv2D", "strides")
    assert strides["buckets"] == {"1": 1, "2": 1, ">= 3": 0, "unequal": 1}
    assert strides["missing"] == [">= 3"]
    assert strides["values"] == {"1": 1, "1x2": 1}
    assert row(table, "Conv2D", "padding")["buckets"] == {"valid": 1, "same": 1}   # no causal for 2D
    assert row(table, "Conv2D", "groups")["buckets"] == {"1": 1, "1 < groups < C": 0, "groups = C > 1": 1}
    assert row(table, "Conv2D", "data_format")["missing"] == []
    assert row(table, "Conv2D", "dtype")["missing"] == ["float16", "bfloat16"]
    assert row(table, "Conv2D", "batch")["buckets"] == {"1": 1, "> 1": 1}
    assert "depth_multiplier" not in {r["parameter"] for r in table["Conv2D"]["parameters"]}
    assert "causal" in row(table, "Conv1D", "padding")["missing"]
    text = format_coverage(table)
    assert "NOT COVERED: >= 3" in text


def test_shipped_cases_cover_every_bucket_of_every_layer_kind():
    cases, _ = load_paths([CASES])
    table = coverage_table(cases)
    missing = {(layer, r["parameter"], b) for layer, e in table.items() for r in e["parameters"] for b in r["missing"]}
    assert not missing, f"uncovered (layer, parameter, value)={sorted(missing)}, but the shipped cases should cover all"


def test_lint_flags_weak_cases_with_reasons(tmp_path):
    entries, s = lint(load_cases(tmp_path, LINT))
    by_id = {e.case.id: e for e in entries}
    weak = by_id["weak-ones"]
    assert weak.weak and weak.kills == []
    assert any("constant input" in h for h in weak.hints) and any("batch 1" in h for h in weak.hints)
    assert not by_id["weak-but-golden"].weak, "a golden output is an independent check: not weak"
    strong = by_id["strong"]
    assert not strong.weak and {"flipped_kernel", "kernel_hw_swapped", "same_extra_before"} <= set(strong.kills)
    text = format_lint(entries, s, weak_only=True)
    assert "WEAK" in text and "weak-ones" in text and "strong" not in text.split("\n")[0]


def test_cli_coverage_and_mutants_list(capsys, tmp_path):
    path = write_yaml(tmp_path, TWO_CONV2D)
    assert cli.main(["coverage", str(path), "--missing-only"]) == 0
    out = capsys.readouterr().out
    assert "Conv1D (0 cases)" in out and "NOT COVERED" in out
    assert cli.main(["mutants", "--list"]) == 0
    assert "flipped_kernel" in capsys.readouterr().out
