"""The converter scoreboard: built-in engines and a failing plug-in over a few small cases and a fuzz budget."""
from __future__ import annotations

import json
import re

import pytest

from harness.layers.geometry import LAYERS

from harness.frontends import cli
from harness import engines
from harness.engines.base import Engine, Isolation
from harness.judge.findings import Finding
from harness.judge.runner import Result
from harness.cases.schema import load_file
from harness.scoreboard import board, fuzzcases, installed

CASES = """\
cases:
  - id: conv-same
    layer: Conv2D
    input_shape: [2, 6, 5, 3]
    config: {filters: 4, kernel_size: [3, 2], padding: same}
  - id: grouped
    layer: Conv1D
    input_shape: [1, 9, 4]
    config: {filters: 4, kernel_size: 3, groups: 2}
  - id: dw-cf
    layer: DepthwiseConv1D
    input_shape: [1, 3, 7]
    dtype: float64
    config: {kernel_size: 3, data_format: channels_first, use_bias: false}
"""
FLIPPED = "wrong=tests.plugins_for_tests:flipped"


@pytest.fixture(scope="module")
def scoreboard(tmp_path_factory):
    """One scoreboard run (the built-ins and the flipped plug-in, 3 fuzzed configurations): (json, html, folder)."""
    folder = tmp_path_factory.mktemp("scoreboard")
    (folder / "small.yaml").write_text(CASES)
    out = folder / "out"
    rc = cli.main(["scoreboard", str(folder / "small.yaml"), "--engine", "oracle", "--engine", "keras",
                   "--engine", "torch", "--engine", FLIPPED, "--fuzz", "3", "--out", str(out)])
    # the flipped plug-in fails: the board is written, and the exit code says an item failed
    assert rc == 1, f"exit={rc}, but should be 1"
    doc = json.loads((out / "scoreboard.json").read_text())
    return doc, (out / "scoreboard.html").read_text(), out


def test_the_document_has_its_documented_shape(scoreboard):
    doc, _, out = scoreboard
    assert set(doc) == {"schema_version", "created", "command", "paths", "shard", "duration_s", "cases", "fuzz",
                        "environment", "engines", "not_installed", "columns", "cells"}, sorted(doc)
    assert doc["cases"] == {"shipped": 3, "fuzz": 3, "invalid": 0}, doc["cases"]
    assert doc["fuzz"]["file"] == str(out / fuzzcases.FILE_NAME)
    assert [e["name"] for e in doc["engines"]] == ["oracle", "keras", "torch", "wrong"]
    keras = doc["engines"][1]
    assert keras["kind"] == "built-in" and keras["versions"].startswith("keras "), keras["versions"]
    assert "depthwise_bias" in doc["engines"][2]["options"], doc["engines"][2]["options"]
    assert doc["engines"][3]["spec"] == FLIPPED and doc["engines"][3]["kind"] == "plug-in"
    ids = [c["id"] for c in doc["columns"]]
    for column in ("Conv2D float32", "Conv1D float32", "DepthwiseConv1D float64", "groups > 1", "same padding",
                   "channels_first"):
        assert column in ids, f"column {column!r} missing from {ids}"
    for engine, row in doc["cells"].items():
        assert list(row) == ids, f"{engine}: cells {list(row)} in another order than the columns {ids}"
        for cell in row.values():
            assert cell["total"] == sum(cell[k] for k in board.OUTCOMES), cell


def test_a_failing_plugin_cell_names_its_diagnosed_cause_with_a_repro(scoreboard):
    doc, _, _ = scoreboard
    cell = doc["cells"]["wrong"]["Conv2D float32"]
    assert cell["fail"] == 1 and cell["pass"] == 0, cell
    [cause] = cell["causes"]
    assert cause["cause"] == "mutant flipped_kernel", cause   # the finding's kind and id: stable across wording
    assert [(f["kind"], f["id"]) for f in cause["example"]["findings"]] == [("mutant", "flipped_kernel")], cause
    assert "the kernel flipped" in cause["example"]["findings"][0]["text"], cause
    assert cause["count"] == 1 and cause["outcomes"] == {"fail": 1}, cause
    assert cause["example"]["case"] == "conv-same"
    assert cause["example"]["repro"].endswith(f"--case conv-same --engine oracle --engine {FLIPPED}"), cause
    totals = doc["engines"][3]["totals"]
    assert totals["fail"] >= 3 and totals["causes"][0]["cause"] == "mutant flipped_kernel", totals


def test_the_built_ins_pass_where_they_agree(scoreboard):
    doc, _, _ = scoreboard
    for engine in ("oracle", "torch"):
        for column in ("Conv2D float32", "groups > 1", "same padding"):
            cell = doc["cells"][engine][column]
            assert cell["pass"] == cell["total"] >= 1 and not cell["causes"], (engine, column, cell)


def test_the_fuzz_budget_is_a_case_file_the_repro_commands_name(scoreboard):
    _, _, out = scoreboard
    cases, errors = load_file(out / fuzzcases.FILE_NAME)
    assert not errors and [c.id for c in cases] == ["fuzz-0", "fuzz-1", "fuzz-2"], (errors, cases)
    assert fuzzcases.draw(3) == fuzzcases.draw(3), "the fuzz budget must draw the same configurations every run"


def test_the_page_is_one_self_contained_file_in_the_report_style(scoreboard):
    doc, html, _ = scoreboard
    assert html.startswith("<!DOCTYPE html>") and '<table class="board" id="board">' in html
    assert ":root { --ok:" in html, "report.css is not inlined"
    assert not re.search(r'(src|href)="(https?:)?//', html), "the page loads something from the network"
    assert 'data-engine="wrong"' in html and "mutant flipped_kernel" in html
    assert "[mutant flipped_kernel]" in html, "a cause's example message is not on the page"
    assert f"--engine {FLIPPED}" in html, "a cause's repro command is not on the page"


class Missing(Engine):
    """A converter whose venv was never made."""

    name = "missing"
    isolation = Isolation(venv="missing-converter")


class NoFramework(Engine):
    """An in-process engine whose framework is not installed here."""

    name = "noframework"
    framework = "no_such_framework_here"


def test_engines_without_their_venv_are_listed_not_run(monkeypatch, tmp_path):
    monkeypatch.setenv("HARNESS_ENGINES_DIR", str(tmp_path))
    monkeypatch.setattr(engines, "BUILTIN", {**{n: engines.BUILTIN[n] for n in ("oracle", "keras", "torch")},
                                             "missing": f"{__name__}:Missing",
                                             "noframework": f"{__name__}:NoFramework"})
    run, missing = installed.choose([])
    assert run == ["oracle", "keras", "torch"], run
    assert missing == [{"engine": "missing", "reason": "not installed: make engine-missing-converter"},
                       {"engine": "noframework",
                        "reason": "not installed: no no_such_framework_here module in this environment"}], missing
    (tmp_path / "missing-converter" / "bin").mkdir(parents=True)
    (tmp_path / "missing-converter" / "bin" / "python").write_text("")
    assert installed.not_installed("missing") == ""
    run, missing = installed.choose(["torch", FLIPPED])
    assert (run, missing) == (["torch", "wrong"], []), (run, missing)


def _result(verdict, message, xfail="", engine="e", **fields):
    return Result(case_id="c", file="c.yaml", engine=engine, verdict=verdict, message=message, xfail=xfail,
                  repro=f"python -m harness run c.yaml --case c --engine {engine}", **fields)


def test_a_cell_counts_outcomes_and_groups_failures_by_cause(tmp_path):
    (tmp_path / "c.yaml").write_text(CASES)
    case = {c.id: c for c in load_file(tmp_path / "c.yaml")[0]}["conv-same"]
    b = board.Board(["e"])
    padding = [Finding("shape", "padding-on-wrong-axes", "padding applied on the wrong axes: ...")]
    for r in (_result("pass", ""),
              _result("fail", "e: output shape=(4, 7, 2) [c.yaml::a]; diagnosis: ...", findings=padding,
                      decided_by="shape"),
              _result("fail", "e: output shape=(5, 7, 2) [c.yaml::b]; diagnosis: reworded", decided_by="shape",
                      findings=[Finding("shape", "padding-on-wrong-axes", "the pad vector read in the wrong layout")]),
              _result("fail", "e: max error/bound 2 [c.yaml::c]", xfail="inherited from keras: some-bug",
                      xfail_id="some-bug", xfail_from="keras", decided_by="values"),
              _result("error", "e: RuntimeError: x [c.yaml::d]; cause: the exported graph is invalid: y",
                      error_type="RuntimeError", reason="x",
                      findings=[Finding("error_cause", "invalid-graph", "the exported graph is invalid: y")]),
              _result("skip", "e cannot compute float64: no kernel (a limit of the runtime) [c.yaml::e]",
                      reason_id="dtype-limit", reason="cannot compute float64: no kernel"),
              _result("skip", "e cannot run this case: Unsupported 3 groups (x) [c.yaml::f]", reason_id="engine-skip",
                      reason="Unsupported 3 groups (x)")):
        b.add(case, r)
    cell = b.as_dict()["e"]["Conv2D float32"]
    assert {k: cell[k] for k in board.OUTCOMES} == {"pass": 1, "fail": 2, "xfail": 1, "xpass": 0, "error": 1,
                                                    "skip": 2, "rejected": 0}, cell
    assert [(c["cause"], c["count"]) for c in cell["causes"]] == [
        ("shape: padding-on-wrong-axes", 2), ("error cause: invalid-graph", 1),
        ("inherited from keras: some-bug", 1)], cell["causes"]
    assert cell["skips"] == [{"reason": "cannot compute float64: no kernel", "count": 1},
                             {"reason": "Unsupported # groups", "count": 1}], cell["skips"]
    assert cell == b.as_dict()["e"]["same padding"], "a notable column counts the same items"


def test_jobs_split_the_cases_over_processes_and_give_the_same_board(scoreboard, tmp_path, monkeypatch):
    """--jobs 2: whole cases per process (a plug-in registered again there); every cell as with one process; the
    versions come from the first job's engines (issue 21: the parent restarted every worker only to read them)."""
    doc, _, out = scoreboard
    folder = out.parent

    def not_here(name):
        raise AssertionError(f"the parent asked {name}'s environment itself")

    monkeypatch.setattr(installed, "environment_of", not_here)   # the jobs are spawned: theirs is the real one
    rc = cli.main(["scoreboard", str(folder / "small.yaml"), "--engine", "oracle", "--engine", "torch",
                   "--engine", FLIPPED, "--fuzz", "3", "--jobs", "2", "--out", str(tmp_path)])
    # the flipped plug-in fails: the board is written, and the exit code says an item failed
    assert rc == 1, f"exit={rc}, but should be 1"
    parallel = json.loads((tmp_path / "scoreboard.json").read_text())
    assert parallel["command"][-4:-2] == ["--jobs", "2"]
    for engine in ("oracle", "torch", "wrong"):
        ours = {c: {k: v for k, v in cell.items() if k != "causes"} for c, cell in parallel["cells"][engine].items()}
        theirs = {c: {k: v for k, v in cell.items() if k != "causes"} for c, cell in doc["cells"][engine].items()}
        assert ours == theirs, f"cells of {engine} differ with --jobs 2"
        causes = {c: [(x["cause"], x["count"]) for x in cell["causes"]] for c, cell in parallel["cells"][engine].items()}
        assert causes == {c: [(x["cause"], x["count"]) for x in cell["causes"]]
                          for c, cell in doc["cells"][engine].items()}
    versions = {row["name"]: row["versions"] for row in parallel["engines"]}
    assert versions == {row["name"]: row["versions"] for row in doc["engines"] if row["name"] in versions}, versions
    assert "torch" in versions["torch"], versions


def test_the_markdown_summary_has_a_row_per_engine_with_its_totals(scoreboard):
    doc, _, out = scoreboard
    text = (out / "scoreboard.md").read_text()
    for row in doc["engines"]:
        t = row["totals"]
        assert f"| {row['name']} | {row['versions'] or '-'} | {t['pass']} | {t['fail']} | {t['xfail']} |" in text
    (header,) = [line for line in text.splitlines() if line.startswith("| engine | Conv")]
    kinds = header.strip("| ").split(" | ")[1:]
    assert kinds == [k for k in LAYERS if k in kinds], f"columns={kinds}, but should be in registry order"
    assert {"Conv1D", "Conv2D", "DepthwiseConv1D"} <= set(kinds), kinds   # small.yaml's; the fuzz may add others
    assert "mutant flipped_kernel" in text   # the flipped plug-in's cause


def test_each_engine_row_times_its_items(scoreboard):
    doc, _, out = scoreboard
    text = (out / "scoreboard.md").read_text()
    for row in doc["engines"]:
        t, timing = row["totals"], row["timing"]
        items = sum(t[o] for o in ("pass", "fail", "xfail", "xpass", "error", "skip", "rejected"))
        assert timing["items"] == items, f"{row['name']}: timed {timing['items']} items, but ran {items}"
        assert 0 <= timing["median_s"] <= timing["max_s"] <= timing["total_s"], timing
        # Of the total, what the engine's framework calls took: never more than the total, some for every
        # framework engine (its layer's build and call), none for the oracle (the harness's own NumPy).
        assert 0 <= timing["third_party_s"] <= timing["total_s"], timing
        assert (timing["third_party_s"] == 0) == (row["name"] == "oracle"), (row["name"], timing)
        share = 1 - timing["third_party_s"] / timing["total_s"]
        # Both seconds are rounded to 1 ms on the board, the share to 1e-4: that far apart at most.
        assert abs(timing["harness_share"] - share) <= 1e-3 / timing["total_s"] + 1e-4, timing
        assert (f"| {timing['median_s']:.3g} s median, {timing['max_s']:.3g} s slowest; harness "
                f"{timing['harness_share']:.0%} of {timing['total_s']:.0f} s |") in text, row["name"]
    total = sum(row["timing"]["total_s"] for row in doc["engines"])
    third = sum(row["timing"]["third_party_s"] for row in doc["engines"])
    shown = re.search(r"harness ([0-9.]+)% of ([0-9]+) s \(the rest inside", text.splitlines()[0])
    assert shown is not None, text.splitlines()[0]
    # the board's seconds are rounded to 1 ms and its share to 1e-4: the line shows the share to 0.1%
    assert abs(float(shown.group(1)) / 100 - max(0.0, total - third) / total) <= 1e-3 + 2e-3 / total, shown.group(0)
    assert board.Board(["x"]).timing("x") == {"items": 0, "median_s": None, "max_s": None, "total_s": 0.0,
                                              "third_party_s": 0.0, "harness_share": None}


def test_versions_are_read_from_framework_facts_and_from_a_converters_package_table():
    assert installed.versions_line({"keras": {"version": "3.15.1", "loaded": True},
                                    "torch-onnx": {"onnx": "1.23.2", "onnxruntime": "1.32.0", "note": "x"}}) \
        == "keras 3.15.1, onnx 1.23.2, onnxruntime 1.32.0"


def test_the_page_leads_with_one_engine_by_layer_kind_matrix(scoreboard):
    """Issue 21: the page opens on engine x layer kind, each cell the share passed with its count and its
    failures (cause and repro) a click away; the per-dtype board follows, folded."""
    doc, html, _ = scoreboard
    assert html.index('id="matrix"') < html.index('id="engines"') < html.index('id="scoreboard"')
    lead = html[html.index('id="matrix"'):html.index('id="engines"')]
    kinds = list(dict.fromkeys(c["layer"] for c in doc["columns"] if c["kind"] == "layer-dtype"))
    for kind in ("Conv2D", "Conv1D", "DepthwiseConv1D"):
        assert f"<th>{kind}</th>" in lead, f"the matrix has no {kind} column"
    oracle = lead[lead.index('data-engine="oracle"'):lead.index("</tr>", lead.index('data-engine="oracle"'))]
    assert oracle.count('data-share="1.000"') == len(kinds), "the oracle passes every kind it judged"
    wrong = lead[lead.index('data-engine="wrong"'):lead.index("</tr>", lead.index('data-engine="wrong"'))]
    shares = [float(v) for v in re.findall(r'data-share="([0-9.]+)"', wrong)]
    assert shares and min(shares) < 1, f"the flipped plug-in's shares={shares}, but some should be below 1"
    assert "mutant flipped_kernel" in wrong and f"--engine {FLIPPED}" in wrong, "a failing cell opens its causes"


def test_a_matrix_cell_merges_its_dtypes_and_colours_by_the_share_passed():
    from harness.scoreboard import page

    def cell(**counts):
        causes = counts.pop("causes", [])
        return {**dict.fromkeys(page.SHOWN, 0), **counts, "causes": causes}

    example = {"repro": "python -m harness run c.yaml --case c --engine e", "message": "m"}
    merged = page.matrix_cell([cell(**{"pass": 3, "fail": 1, "causes": [{"cause": "mutant x", "count": 1,
                                                                         "example": example}]}),
                               cell(**{"pass": 1, "xfail": 2, "skip": 4, "causes": [
                                   {"cause": "known bug: b", "count": 2, "example": example},
                                   {"cause": "mutant x", "count": 0, "example": example}]})])
    assert (merged["pass"], merged["judged"], merged["skip"]) == (4, 7, 4), merged
    assert merged["share"] == 4 / 7, merged["share"]
    assert [(c["cause"], c["count"]) for c in merged["causes"]] == [("known bug: b", 2), ("mutant x", 1)]
    assert page.share_tone(1.0, {}) .startswith("hsl(120,") and page.share_tone(0.0, {}).startswith("hsl(0,")
    assert page.matrix_cell([cell(skip=2)])["share"] is None, "only skips: nothing judged, no share"
    shown, full = page.folded("LiteRT cannot compute float64. " + "x " * 60)
    assert shown == "LiteRT cannot compute float64. ..." and full.startswith("LiteRT"), shown
    assert page.folded("short") == ("short", "")


def _counts(doc):
    """Every engine's cells and totals without the causes' examples (which shard's example is kept differs)."""
    def strip(cell):
        return {**{k: v for k, v in cell.items() if k != "causes"},
                "causes": [(c["cause"], c["count"], c["outcomes"]) for c in cell["causes"]]}
    return ({e: {c: strip(cell) for c, cell in cells.items()} for e, cells in doc["cells"].items()},
            {row["name"]: strip(row["totals"]) for row in doc["engines"]})


def _differences(ours, theirs):
    """(engine, column or 'totals', what differs) between two boards' counts."""
    (cells_a, totals_a), (cells_b, totals_b) = _counts(ours), _counts(theirs)
    out = [(e, c, cells_a.get(e, {}).get(c), cell) for e, cells in cells_b.items() for c, cell in cells.items()
           if cells_a.get(e, {}).get(c) != cell]
    return out + [(e, "totals", totals_a.get(e), t) for e, t in totals_b.items() if totals_a.get(e) != t]


def test_a_ci_matrix_of_shards_merges_into_the_unsharded_board(scoreboard, tmp_path, capsys):
    """Issue 21: the scoreboard sharded by case (--shard I/N) and by engine (--engine), one CI job each, and merged
    (--merge): the same cells, totals and exit code as one run."""
    doc, _, out = scoreboard
    small = str(out.parent / "small.yaml")
    engines = ["--engine", "oracle", "--engine", "keras", "--engine", "torch", "--engine", FLIPPED]
    parts = []
    for i in (1, 2):
        folder = tmp_path / f"case-shard-{i}"
        rc = cli.main(["scoreboard", small, *engines, "--fuzz", "3", "--shard", f"{i}/2", "--out", str(folder)])
        assert rc in (0, 1), rc
        parts.append(str(folder / "scoreboard.json"))
    shard_docs = [json.loads(open(p).read()) for p in parts]
    assert sum(d["cases"]["shipped"] + d["cases"]["fuzz"] for d in shard_docs) == \
        doc["cases"]["shipped"] + doc["cases"]["fuzz"], "every case in exactly one shard"
    merged_dir = tmp_path / "merged"
    assert cli.main(["scoreboard", "--merge", *parts, "--out", str(merged_dir)]) == 1, "the flipped plug-in fails"
    merged = json.loads((merged_dir / "scoreboard.json").read_text())
    assert _differences(merged, doc) == [], "the merged board differs from the unsharded one"
    assert [row["name"] for row in merged["engines"]] == [row["name"] for row in doc["engines"]]
    assert (merged_dir / "scoreboard.html").read_text().startswith("<!DOCTYPE html>")
    # By engine: each job its own engines, the whole case list.
    by_engine = []
    for name, spec in (("ref", ["--engine", "oracle", "--engine", "keras"]),
                       ("plugin", ["--engine", "torch", "--engine", FLIPPED])):
        folder = tmp_path / name
        cli.main(["scoreboard", small, *spec, "--fuzz", "3", "--out", str(folder)])
        by_engine.append(str(folder / "scoreboard.json"))
    assert cli.main(["scoreboard", "--merge", *by_engine, "--out", str(tmp_path / "m2")]) == 1
    assert _differences(json.loads((tmp_path / "m2" / "scoreboard.json").read_text()), doc) == []
    capsys.readouterr()
    assert cli.main(["scoreboard", "--merge", *parts, "--engine", "torch", "--out", str(tmp_path / "m3")]) == 2
    assert "--merge reads the shards' scoreboard.json files and runs nothing: drop --engine" in capsys.readouterr().err
    # The same engine twice outside one split (a job run twice, engine shards that overlap): refused, not doubled.
    assert cli.main(["scoreboard", "--merge", by_engine[0], by_engine[0], "--out", str(tmp_path / "m4")]) == 2
    assert "engine oracle is in 2 of the scoreboards, which are not distinct shards" in capsys.readouterr().err


def test_jobs_auto_takes_the_usable_cores_within_the_available_memory(monkeypatch, capsys):
    import os

    from harness.frontends import scoreboard_command as sc

    cores = len(os.sched_getaffinity(0))
    count, why = sc.auto_jobs(15)
    assert 1 <= count <= cores and why.startswith(f"--jobs auto: {count} ({cores} usable cores"), why
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)))
    count, why = sc.auto_jobs(10_000)   # 8 TB a process: the memory, not the 64 cores, decides: one
    assert count == 1 and "64 usable cores" in why, why
    for bad, said in (("0", "must be at least 1"), ("two", "must be a count of processes or auto")):
        with pytest.raises(SystemExit) as exit_:
            cli.main(["scoreboard", "--jobs", bad])
        assert exit_.value.code == 2 and said in capsys.readouterr().err, bad
