"""Sharding across jobs: the deterministic split, `pytest --shard`, `report --shard` + `report --merge` (the merged
report is the unsharded one), and `fuzz --shard` + `fuzz --merge` (disjoint seeds, summaries that add up)."""
from __future__ import annotations

import json
import re

import pytest

from harness.cases import sharding
from harness.frontends.cli import main
from harness.fuzz import search as fuzz
from harness.report import html as report_html
from harness.report.merge import SIDECAR
from harness.cases.schema import case_from_entry
from test_report_helpers import run_report, strict_json, write_cases

TAG = "[test_shard.py]"


# ---------------------------------------------------------------- the split

@pytest.mark.parametrize("text, want", [("1/1", (1, 1)), ("2/4", (2, 4)), ("4/4", (4, 4))])
def test_shard_option_parses(text, want):
    assert sharding.parse(text) == want


@pytest.mark.parametrize("text", ["0/3", "4/3", "1", "a/b", "1/0", "-1/2", ""])
def test_a_bad_shard_option_says_how_to_write_it(text):
    with pytest.raises(ValueError, match="I/N with 1 <= I <= N"):
        sharding.parse(text)


def _cases(n):
    out = []
    for i in range(n):
        out += case_from_entry("split.yaml", {"id": f"c{i}", "layer": "Conv2D", "input_shape": [1, 4 + i % 7, 5, 2],
                                              "config": {"filters": 1 + i % 3, "kernel_size": 2}})
    return out


def test_split_is_a_partition_in_order_and_independent_of_the_order_given():
    cases = _cases(23)
    seen = []
    for i in range(1, 5):
        mine, positions = sharding.select(cases, i, 4)
        assert positions == sorted(positions), f"shard {i}: positions={positions}, but should keep the suite's order"
        assert [c.id for c in mine] == [cases[p].id for p in positions]
        seen += positions
    assert sorted(seen) == list(range(23)), f"positions over 4 shards={sorted(seen)}, but should be each case once"
    costs = {sharding.case_key(c): sharding.case_cost(c) for c in cases}
    reordered = dict(sorted(costs.items(), reverse=True))
    assert sharding.assign(costs, 4) == sharding.assign(reordered, 4), "the split depends on the order of the cases"


def test_greedy_split_puts_the_big_case_alone_and_balances_the_rest():
    costs = {"big": 100.0, **{f"s{i}": 1.0 for i in range(10)}}
    shard_of = sharding.assign(costs, 3)
    assert [k for k, v in shard_of.items() if v == shard_of["big"]] == ["big"], f"split={shard_of} {TAG}"
    loads = [sum(costs[k] for k, v in shard_of.items() if v == i) for i in (1, 2, 3) if i != shard_of["big"]]
    assert sorted(loads) == [5.0, 5.0], f"loads of the small shards={loads}, but should be 5 and 5 {TAG}"


def test_cost_follows_output_size_and_reduction_length():
    small, = case_from_entry("c.yaml", {"id": "s", "layer": "Conv2D", "input_shape": [1, 8, 8, 4],
                                        "config": {"filters": 4, "kernel_size": 3}})
    big, = case_from_entry("c.yaml", {"id": "b", "layer": "Conv2D", "input_shape": [4, 64, 64, 16],
                                      "config": {"filters": 32, "kernel_size": 3}})
    assert sharding.case_cost(big) > 100 * sharding.case_cost(small) - 100 * sharding.ITEM_S


# ---------------------------------------------------------------- pytest --shard

SUITE = """\
cases:
  - id: a
    layer: Conv1D
    input_shape: [2, 9, 3]
    config: {filters: 2, kernel_size: 3}
    sweep: {padding: [valid, same], strides: [1, 2]}
  - id: b
    layer: DepthwiseConv2D
    input_shape: [1, 6, 5, 2]
    config: {kernel_size: 2, depth_multiplier: 2}
    sweep: {padding: [valid, same]}
  - id: big
    layer: Conv2D
    input_shape: [2, 32, 32, 8]
    config: {filters: 8, kernel_size: 3}
"""
ITEM = re.compile(r"^(\S+\.yaml)::(\S+)\[(\w+)\]$", re.MULTILINE)


def _collected(pytester, *args):
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p",
                                           "harness.frontends.shard", "--collect-only", "-q", "--engine", "oracle",
                                           "--engine", "torch", *args, timeout=120)
    return result, ITEM.findall(result.stdout.str())


def test_pytest_shards_run_every_item_once_and_keep_a_case_together(pytester):
    pytester.makefile(".yaml", suite=SUITE)
    _, everything = _collected(pytester, "suite.yaml")
    assert len(everything) == 7 * 2, f"items without --shard={len(everything)}, but should be 14 {TAG}"
    parts = []
    for i in (1, 2, 3):
        result, items = _collected(pytester, "suite.yaml", "--shard", f"{i}/3")
        assert f"shard {i}/3: {len(items)} of 14 items" in result.stdout.str(), result.stdout.str()
        parts.append(items)
    union = [it for part in parts for it in part]
    assert sorted(union) == sorted(everything), f"shards together={sorted(union)}, but should be every item once"
    for part in parts:
        others = [it for p in parts if p is not part for it in p]
        split = {case for _, case, _ in part} & {case for _, case, _ in others}
        assert not split, f"cases split across shards={split}, but a case's items should share a shard {TAG}"
    assert any([case for _, case, _ in part] == ["big", "big"] for part in parts), \
        f"the big case should have a shard to itself: {parts} {TAG}"


def test_pytest_shard_runs_under_xdist_and_a_bad_value_is_a_usage_error(pytester):
    pytester.makefile(".yaml", suite=SUITE)
    whole = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "harness.frontends.shard", "-n", "2", "--engine",
                                          "oracle", "suite.yaml", "--shard", "2/2", timeout=120)
    outcomes = whole.parseoutcomes()
    _, items = _collected(pytester, "suite.yaml", "--shard", "2/2", "--engine", "oracle")
    oracle_items = [it for it in items if it[2] == "oracle"]
    assert outcomes.get("passed") == len(oracle_items) > 0, f"-n 2 --shard 2/2 outcomes={outcomes} {TAG}"
    bad = pytester.runpytest_subprocess("-p", "harness.frontends.shard", "suite.yaml", "--shard", "3/2", timeout=120)
    assert bad.ret == pytest.ExitCode.USAGE_ERROR and "I/N with 1 <= I <= N" in bad.stderr.str()


# ---------------------------------------------------------------- report --shard, report --merge

RUN_FIELDS = ("created", "command", "duration_s")   # what describes the run itself, not its results


def _without_run_fields(doc):
    doc = {k: v for k, v in doc.items() if k not in RUN_FIELDS}
    doc["results"] = [{k: v for k, v in r.items() if k != "duration_s"} for r in doc["results"]]
    return doc


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shards")
    cases = write_cases(folder)
    codes = {"whole": run_report(cases, folder / "whole")}
    for i in (1, 2, 3):
        codes[i] = run_report(cases, folder / f"shard{i}", "--shard", f"{i}/3")
    return folder, codes


def test_shards_are_reports_of_their_cases_with_a_sidecar(sharded):
    folder, codes = sharded
    seen = []
    for i in (1, 2, 3):
        doc = strict_json(folder / f"shard{i}" / "results.json")
        side = json.loads((folder / f"shard{i}" / SIDECAR).read_text())
        assert side["index"] == i and side["count"] == 3 and len(side["positions"]) == len(doc["cases"])
        assert {r["case_id"] for r in doc["results"]} == {c["id"] for c in doc["cases"]}
        assert "--shard" in doc["command"] and (folder / f"shard{i}" / "index.html").exists()
        seen += [c["id"] for c in doc["cases"]]
    whole = strict_json(folder / "whole" / "results.json")
    assert sorted(seen) == sorted(c["id"] for c in whole["cases"]), f"cases over the shards={seen} {TAG}"


def test_merged_report_is_the_unsharded_report(sharded, tmp_path, capsys):
    folder, codes = sharded
    shards = [str(folder / f"shard{i}" / "results.json") for i in (3, 1, 2)]   # any order
    rc = main(["report", "--merge", *shards, "--out", str(tmp_path)])
    assert rc == codes["whole"] == 1, f"merge exit={rc}, unsharded={codes['whole']}: both should be 1 (a failing plug-in)"
    whole, merged = strict_json(folder / "whole" / "results.json"), strict_json(tmp_path / "results.json")
    assert _without_run_fields(merged) == _without_run_fields(whole), "the merged results.json differs from " \
                                                                       f"the unsharded one beyond {RUN_FIELDS} {TAG}"
    assert [c["id"] for c in merged["cases"]] == [c["id"] for c in whole["cases"]], "case order differs"
    assert merged["command"][:5] == ["python", "-m", "harness", "report", "--merge"]
    # The page too: the unsharded document, with the merged run's own fields, renders to the same bytes.
    page = (tmp_path / "index.html").read_text(encoding="utf-8")
    side_pictures = {}
    for i in (1, 2, 3):
        side_pictures.update(json.loads((folder / f"shard{i}" / SIDECAR).read_text())["pictures"])
    assert side_pictures, "the shards kept no pictures"
    same = dict(whole, **{k: merged[k] for k in RUN_FIELDS})
    same["results"] = [dict(w, duration_s=m["duration_s"]) for w, m in zip(whole["results"], merged["results"])]
    assert report_html.render(same, side_pictures) == page, f"the merged index.html differs {TAG}"
    assert "merged 3 shards" in capsys.readouterr().out


def test_merge_refuses_a_missing_or_repeated_shard_and_other_runs(sharded, tmp_path, capsys):
    folder, _ = sharded
    one, two, three = (str(folder / f"shard{i}" / "results.json") for i in (1, 2, 3))
    assert main(["report", "--merge", one, two, "--out", str(tmp_path)]) == 2
    assert "shard(s) 3/3 missing" in capsys.readouterr().err
    assert main(["report", "--merge", one, two, three, two, "--out", str(tmp_path)]) == 2
    assert "2/3 given more than once" in capsys.readouterr().err
    other = tmp_path / "other"
    assert run_report(write_cases(tmp_path), other, "--shard", "1/2", "--case", "wide") in (0, 1)
    assert main(["report", "--merge", str(other / "results.json"), two, three, "--out", str(tmp_path)]) == 2
    assert "not shards of one split" in capsys.readouterr().err
    assert main(["report", "--merge", str(folder / "whole" / "results.json"), "--out", str(tmp_path)]) == 2
    assert f"no {SIDECAR} beside it" in capsys.readouterr().err
    assert main(["report", "--merge", one, two, three, "--case", "seq", "--out", str(tmp_path)]) == 2
    assert "drop --case" in capsys.readouterr().err
    assert not (tmp_path / "results.json").exists(), "a refused merge wrote a report"


def test_a_whole_report_written_over_a_shard_drops_its_sidecar(tmp_path):
    cases = write_cases(tmp_path)
    run_report(cases, tmp_path / "out", "--shard", "1/2")
    assert (tmp_path / "out" / SIDECAR).exists()
    run_report(cases, tmp_path / "out")
    assert not (tmp_path / "out" / SIDECAR).exists(), "a stale shard.json would let --merge take a whole report"


def test_merge_compares_the_merged_records_with_a_baseline(sharded, tmp_path):
    folder, _ = sharded
    shards = [str(folder / f"shard{i}" / "results.json") for i in (1, 2, 3)]
    base = str(folder / "whole" / "results.json")
    main(["report", "--merge", *shards, "--baseline", base, "--out", str(tmp_path)])
    doc = strict_json(tmp_path / "results.json")
    assert doc["baseline"]["changed"] == {"verdict": 0, "ratio": 0, "new": 0} and doc["baseline"]["gone"] == []


# ---------------------------------------------------------------- fuzz --shard, fuzz --merge

def test_fuzz_shards_take_disjoint_seeds_and_shares_of_the_budget():
    assert [fuzz.shard_budget(10, i, 3) for i in (1, 2, 3)] == [4, 3, 3]
    assert [fuzz.shard_budget(2, i, 3) for i in (1, 2, 3)] == [1, 1, 0]
    # Every seed a shard's workers can use: worker j of `jobs`, hypothesis run a (at most MAX_CAUSES + 1 per worker).
    jobs = 16

    def seeds(index):
        base = fuzz.shard_seed(0, index)
        return {fuzz._attempt_seed(base + j, a) for j in range(jobs) for a in range(fuzz.MAX_CAUSES + 2)}

    all_seeds = [seeds(i) for i in range(1, 9)]
    assert sum(len(s) for s in all_seeds) == len(set().union(*all_seeds)), "two shards share a hypothesis seed"
    assert fuzz.shard_seed(5, 1) == 5, "shard 1 keeps the unsharded seeds (--seed as given)"


def test_fuzz_shard_summaries_merge_into_the_campaign(tmp_path, capsys):
    outs = [tmp_path / f"f{i}.json" for i in (1, 2, 3)]
    for i, out in enumerate(outs, 1):
        rc = main(["fuzz", "--examples", "7", "--shard", f"{i}/3", "--jobs", "1", "--engine", "oracle",
                   "--out", str(out)])
        assert rc == 0, capsys.readouterr().out
    docs = [json.loads(o.read_text()) for o in outs]
    assert [d["stats"]["tried"] for d in docs] == [3, 2, 2], [d["stats"]["tried"] for d in docs]
    assert len({d["first_seed"] for d in docs}) == 3
    capsys.readouterr()
    assert main(["fuzz", "--merge", *map(str, reversed(outs))]) == 0
    text = capsys.readouterr().out
    assert "merged 3 shard(s) of a campaign of 7 configurations" in text and "fuzz: 7 configurations tried" in text
    runs = sum(sum(d["stats"]["runs"].values()) for d in docs)
    merged, _ = fuzz.merge_summaries([str(o) for o in outs])
    assert merged.tried == 7 and sum(merged.runs.values()) == runs and merged.workers == 3
    assert main(["fuzz", "--merge", str(outs[0]), str(outs[2])]) == 2
    assert "shard(s) 2/3 missing" in capsys.readouterr().err
    other = tmp_path / "other.json"
    main(["fuzz", "--examples", "8", "--shard", "2/3", "--jobs", "1", "--engine", "oracle", "--out", str(other)])
    capsys.readouterr()
    assert main(["fuzz", "--merge", str(outs[0]), str(other), str(outs[2])]) == 2
    assert "not shards of one campaign" in capsys.readouterr().err
    assert main(["fuzz", "--merge", *map(str, outs), "--shard", "1/3"]) == 2
    assert "drop --shard" in capsys.readouterr().err
