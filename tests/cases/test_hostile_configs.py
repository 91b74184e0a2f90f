"""Hostile configuration values: every argument of every layer kind, with and without expect.rejected_by, in one
file beside a good case. Each bad case is one clear error (file, case, field), a pinned refusal of an impossible
configuration stays a runnable case, and the good case of the same file still runs."""
from __future__ import annotations

import itertools
import subprocess
import sys

import pytest
import yaml

from harness.errors import CaseError
from harness.layers.families import LAYERS
from harness.layers.geometry import ConfigProblem, geometry, impossible, output_shape
from harness.judge.runner import run_one
from harness.cases.schema import load_file
from testkit import ROOT, load_cases

SIZES = ("filters", "kernel_size", "strides", "dilation_rate", "groups", "depth_multiplier")
# Each kind's smallest valid config: the arguments its family requires (filters 4, kernel_size 3).
BASE = {name: {key: {"filters": 4, "kernel_size": 3}[key] for key in kind.requires} for name, kind in LAYERS.items()}


def hostile_values(rank: int) -> list:
    """0, -1, a huge size, a float, text, a list of the wrong length, null, a bool, a mapping."""
    return [0, -1, 100000, 1.5, "three", [2] * (rank + 1), None, True, {"a": 1}]


def entries() -> list[dict]:
    """One case per (kind, argument, value, with or without rejected_by), and the good case."""
    out = [{"id": "good", "layer": "Conv1D", "input_shape": [1, 6, 2], "config": {"filters": 2, "kernel_size": 3}}]
    assert set(BASE) == set(LAYERS), f"kinds={sorted(LAYERS)}: add the new kind to BASE"
    n = itertools.count()
    for name, kind in LAYERS.items():
        shape = [1, *[8] * kind.rank, 4]
        for arg in sorted(kind.config_keys):
            for value in hostile_values(kind.rank):
                for pinned in (False, True):
                    entry = {"id": f"h{next(n)}-{name}-{arg}{'-pinned' if pinned else ''}", "layer": name,
                             "input_shape": shape, "config": {**BASE[name], arg: value}}
                    if pinned:
                        entry["expect"] = {"rejected_by": ["keras"]}
                    out.append(entry)
    return out


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    path = tmp_path_factory.mktemp("hostile") / "hostile.yaml"
    written = entries()
    path.write_text(yaml.safe_dump({"cases": written}, sort_keys=False))
    return path, written


def test_every_hostile_value_is_one_clear_error_or_a_valid_case(hostile):
    path, written = hostile
    cases, errors = load_file(path)   # no exception escapes: a bad value never loses the file
    valid = {c.id for c in cases}
    assert "good" in valid, f"the good case is lost; errors={[str(e) for e in errors][:5]}"
    by_case: dict[str, list[CaseError]] = {}
    for e in errors:
        by_case.setdefault(e.case, []).append(e)
    for entry in written[1:]:   # after the good case
        cid, arg = entry["id"], entry["id"].split("-")[2]
        mine = by_case.get(cid, [])
        assert (cid in valid) != bool(mine), f"{cid}: valid={cid in valid}, errors={[str(e) for e in mine]}: " \
                                            "should be exactly one of valid or invalid"
        assert len(mine) <= 1, f"{cid}: {len(mine)} errors, should be one: {[str(e) for e in mine]}"
        for e in mine:
            text = str(e)
            assert e.file == str(path) and e.field, f"{cid}: error without file or field: {text}"
            assert e.field.startswith(f"config.{arg}") or e.field in ("input_shape", "config.groups"), \
                f"{cid}: field={e.field}, should name config.{arg}: {text}"
            assert "\n" not in text and "Traceback" not in text and " at 0x" not in text, f"{cid}: {text!r}"
    assert len(errors) == len(by_case), "one error per bad case"


@pytest.mark.parametrize("arg", SIZES)
@pytest.mark.parametrize("value", [0, -1])
def test_an_impossible_size_is_an_error_unless_its_refusal_is_pinned(hostile, arg, value):
    """0 and -1 in a size: a schema error naming the field; pinned as refused (Keras's test_bad_init_args pins
    exactly these), a valid case whose configuration is impossible (the engines are run and must refuse)."""
    path, written = hostile
    cases, errors = load_file(path)
    valid = {c.id: c for c in cases}
    failed = {e.case: e for e in errors}
    matched = 0
    for entry in written:
        if entry["config"].get(arg, "absent") != value or arg not in entry["id"]:
            continue
        matched += 1
        if "pinned" in entry["id"]:
            assert entry["id"] in valid, f"{entry['id']}: {failed.get(entry['id'])}, but a pinned refusal is valid"
            assert valid[entry["id"]].impossible, f"{entry['id']}: not marked impossible"
        else:
            e = failed.get(entry["id"])
            assert e is not None and e.field == f"config.{arg}" and "positive" in e.message, \
                f"{entry['id']}: error={e}, should name config.{arg}"
    assert matched, f"no generated case sets {arg}={value}"


def test_every_family_question_answers_or_raises_the_case_error():
    """Shapes, output length, reduction lengths on every kind x argument x hostile value (no schema in front):
    an answer, or ConfigProblem naming the field; never ZeroDivisionError, TypeError, ..."""
    for name, kind in LAYERS.items():
        shape = (1, *[8] * kind.rank, 4)
        for arg in sorted(kind.config_keys):
            for value in hostile_values(kind.rank):
                config = {**BASE[name], arg: value}
                try:
                    g = geometry(name, config, shape)
                    impossible(g, shape)
                    g.weight_shapes()
                    g.reduction_length()
                    output_shape(g, shape)
                    g.kind.family.backward_reduction_lengths(g, shape)
                    g.param_count()
                except ConfigProblem as problem:
                    assert problem.field and problem.message and "\n" not in str(problem), (name, arg, value)


def test_a_pinned_impossible_configuration_runs_its_engines_without_sizing_it(tmp_path):
    """groups: 0 (the issue's case) reaches the oracle, which refuses it, as Keras does."""
    cases = load_cases(tmp_path, "cases:\n  - {id: g0, layer: Conv2D, input_shape: [1, 8, 8, 4], config: {filters: 4, "
                                 "kernel_size: 3, groups: 0}, expect: {rejected_by: [oracle, keras]}}\n"
                                 "  - {id: huge, layer: Conv2D, input_shape: [1, 8, 8, 4], config: {filters: 4, "
                                 "kernel_size: 100000}, expect: {rejected_by: [oracle]}}\n", "g.yaml")
    assert len(cases) == 2, [c.id for c in cases]
    for case in cases:
        r = run_one(case, "oracle")
        assert r.verdict == "pass" and "rejected, as the case expects" in r.message, (case.id, r.verdict, r.message)


def test_a_huge_kernel_that_fits_is_refused_before_anything_is_allocated(tmp_path):
    """kernel_size 100000 with padding same fits any input, and would need 1.6e11 weights: refused at validate."""
    path = tmp_path / "k.yaml"
    path.write_text("cases:\n  - {id: k, layer: Conv2D, input_shape: [1, 8, 8, 4], config: {filters: 4, "
                    "kernel_size: 100000, padding: same}}\n")
    cases, errors = load_file(path)
    assert not cases and len(errors) == 1 and errors[0].field == "config.kernel_size", [str(e) for e in errors]
    assert "elements" in errors[0].message, str(errors[0])


def test_pytest_collects_the_hostile_file_and_runs_its_good_case(hostile):
    path, written = hostile
    out = subprocess.run([sys.executable, "-m", "pytest", str(path), "--engine", "oracle", "-k", "good",
                          "-p", "no:cacheprovider", "-p", "no:logging", "-q", "-rA"],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    text = out.stdout + out.stderr
    assert "Interrupted" not in text and "ZeroDivisionError" not in text, text[-3000:]
    assert "PASSED" in text and "good[oracle]" in text, text[-3000:]
