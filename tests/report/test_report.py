"""`python -m harness report`: results.json content, HTML structure, baseline marking, atomic writing."""
from __future__ import annotations

import base64
import io
import json
import os
import platform
import re
import subprocess
import sys

import numpy as np
import pytest

from harness.layers.geometry import LAYERS
from harness.report import baseline, pictures, write
from harness.report.collect import Progress
from test_report_helpers import FLIP, ONLY_2D, run_report, strict_json, write_cases

FLIP_NAME, ONLY_2D_NAME = FLIP.split("=")[0], ONLY_2D.split("=")[0]
TAG = "[report_cases.yaml]"


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """One report over the small case file, shared by the read-only tests of this module."""
    folder = tmp_path_factory.mktemp("report")
    cases = write_cases(folder)
    rc = run_report(cases, folder / "out")
    return {"rc": rc, "folder": folder, "cases": cases, "doc": strict_json(folder / "out" / "results.json"),
            "html": (folder / "out" / "index.html").read_text(encoding="utf-8")}


def rec(doc, case_id, engine):
    found = [r for r in doc["results"] if r["case_id"] == case_id and r["engine"] == engine]
    assert len(found) == 1, f"records for {case_id}[{engine}]={len(found)}, but should be 1 {TAG}"
    return found[0]


# ---------------------------------------------------------------- results.json

def test_exit_code_says_there_are_failures(report):
    assert report["rc"] == 1, f"exit code={report['rc']}, but should be 1 (the flipped engine fails) {TAG}"


def test_json_is_versioned_and_strict(report):
    doc = report["doc"]
    assert doc["schema_version"] == "1.6", f"schema_version={doc['schema_version']}, but should be 1.6"
    assert doc["engines"] == ["oracle", FLIP_NAME, ONLY_2D_NAME], f"engines={doc['engines']}"
    want = ["python", "-m", "harness", "report", str(report["cases"]), "--engine", "oracle", "--engine", FLIP]
    assert doc["command"][:len(want)] == want, f"command={doc['command']}, but should start with {want}"
    # 4 cases (seq sweeps 2 paddings) x 3 engines
    assert len(doc["cases"]) == 4 and len(doc["results"]) == 12, \
        f"cases={len(doc['cases'])}, results={len(doc['results'])}, but should be 4 and 12 {TAG}"


def test_flipped_kernel_metrics_match_hand_computation(report):
    # x = [[0,1,2],[3,4,5],[6,7,8]], k = [[0,1],[2,3]]: y = [[19,25],[37,43]]; flipped k = [[3,2],[1,0]]:
    # [[5,11],[23,29]]. |diff| = 14 everywhere; G = y (all terms >= 0), so the worst ratio is at the smallest y.
    r = rec(report["doc"], "arange-2x2", FLIP_NAME)
    m = r["metrics"]
    assert r["verdict"] == "fail", f"verdict={r['verdict']}, but should be fail {TAG}"
    assert m["max_abs"] == 14.0, f"max_abs={m['max_abs']}, but should be 14.0 {TAG}"
    assert m["max_rel"] == pytest.approx(14 / 19), f"max_rel={m['max_rel']}, but should be 14/19 {TAG}"
    assert m["n_over"] == 4 and m["n_elements"] == 4, f"n_over={m['n_over']}/{m['n_elements']}, but should be 4/4"
    assert (m["worst_index"], m["worst_value"], m["worst_oracle"]) == ([0, 0, 0, 0], 5.0, 19.0), \
        f"worst={m['worst_index']}: {m['worst_value']} vs {m['worst_oracle']}, but should be [0,0,0,0]: 5 vs 19"
    worst = [(w["index"], w["value"], w["oracle"]) for w in r["worst_elements"]]
    assert worst == [([0, 0, 0, 0], 5.0, 19.0), ([0, 0, 1, 0], 11.0, 25.0), ([0, 1, 0, 0], 23.0, 37.0),
                     ([0, 1, 1, 0], 29.0, 43.0)], f"worst_elements={worst}, but should be ordered by smallest G"
    assert r["output_shape"] == [1, 2, 2, 1] and r["output_dtype"] == "float32", \
        f"output={r['output_shape']} {r['output_dtype']}, but should be [1, 2, 2, 1] float32 {TAG}"
    assert "harness run" in r["repro"] and r["repro"].endswith(f"--engine {FLIP}"), \
        f"repro={r['repro']}, but should name the plug-in as NAME=MODULE:CALLABLE"


def test_a_record_carries_its_findings_and_the_check_that_decided(report):
    # (1.5) the diagnosis as data: the flipped kernel is named by kind and id, its sentence rendered in the message
    r = rec(report["doc"], "arange-2x2", FLIP_NAME)
    assert r["decided_by"] == "values", f"decided_by={r['decided_by']}, but should be values {TAG}"
    assert [(f["kind"], f["id"]) for f in r["findings"]] == [("mutant", "flipped_kernel")], r["findings"]
    assert r["findings"][0]["text"] in r["message"], (r["findings"], r["message"])
    passed = rec(report["doc"], "arange-2x2", "oracle")
    assert (passed["decided_by"], passed["findings"]) == (None, []), passed


def test_histogram_and_pattern_cover_every_element(report):
    r = rec(report["doc"], "arange-2x2", FLIP_NAME)
    h, p = r["ratio_histogram"], r["pattern"]
    edges = h["log10_edges"]
    over = sum(c for c, lo in zip(h["counts"], edges) if lo >= 0) + h["above"]
    total = sum(h["counts"]) + h["zero"] + h["below"] + h["above"] + h["nonfinite"]
    assert (total, over) == (4, 4), f"histogram total, over bound={total}, {over}, but should be 4, 4 {TAG}"
    assert (p["n_over"], p["n_channels_over"], p["n_channels"]) == (4, 1, 1), f"pattern={p}"


def test_oracle_record_has_keras_layout_params_and_case_facts(report):
    r = rec(report["doc"], "arange-2x2", "oracle")
    assert r["verdict"] == "pass" and r["params"] == 4 and r["weight_shapes"] == {"kernel": [2, 2, 1, 1]}, \
        f"oracle: {r['verdict']}, params={r['params']}, weights={r['weight_shapes']}, but should be pass, 4, (2,2,1,1)"
    assert (r["dtype"], r["seed"], r["input_shape"], r["output_dtype"]) == ("float32", 0, [1, 3, 3, 1], "float64")
    assert r["metrics"]["max_ratio"] == 0.0, f"oracle max_ratio={r['metrics']['max_ratio']}, but should be 0"


def test_skip_reason_and_passing_plugin(report):
    doc = report["doc"]
    skip = rec(doc, "seq(padding=same)", ONLY_2D_NAME)
    assert skip["verdict"] == "skip" and "Conv1D is not implemented" in skip["message"], \
        f"{skip['verdict']}: {skip['message']}, but should be a skip with the plug-in's reason"
    ok = rec(doc, "wide", ONLY_2D_NAME)
    assert ok["verdict"] == "pass" and 0 <= ok["metrics"]["max_ratio"] <= 1, f"wide[{ONLY_2D_NAME}]={ok['verdict']}"
    s = doc["summary"]
    assert (s[FLIP_NAME]["fail"], s[ONLY_2D_NAME]["skip"], s[ONLY_2D_NAME]["pass"], s["oracle"]["pass"]) == (4, 2, 2, 4), \
        f"summary={s}"


def test_known_bugs_are_counted_apart(report):
    doc = report["doc"]
    s = doc["summary"]
    # seq (2 points) marks report-flip as a known bug: 2 of its 4 fails are expected; wide marks report-2d,
    # which passes there: an XPASS.
    assert (s[FLIP_NAME]["xfail"], s[FLIP_NAME]["xpass"], s[ONLY_2D_NAME]["xfail"], s[ONLY_2D_NAME]["xpass"]) \
        == (2, 0, 0, 1), f"summary={s}"
    assert rec(doc, "seq(padding=valid)", FLIP_NAME)["xfail"] == "known: this plug-in flips the kernel"
    assert rec(doc, "arange-2x2", FLIP_NAME)["xfail"] is None
    assert 'data-bad="3"' in report["html"], "banner: 2 unexpected fails + 1 xpass of the known-bug marks = 3"


def test_environment_is_recorded(report):
    env = report["doc"]["environment"]
    assert env["python"] == platform.python_version() and env["numpy"] == np.__version__, f"env={env}"
    for fw in ("tensorflow", "keras", "torch"):
        assert "version" in env[fw] and "loaded" in env[fw], f"environment.{fw}={env[fw]}"
    assert "TF_ENABLE_ONEDNN_OPTS" in env["tensorflow"] and env["cpu"], f"environment={env}"


def test_case_source_is_kept_as_written(report):
    info = {c["id"]: c for c in report["doc"]["cases"]}
    seq = info["seq(padding=same)"]
    assert seq["source"]["sweep"] == {"padding": ["valid", "same"]} and seq["swept"] == {"padding": "same"}, \
        f"source={seq['source']}, swept={seq['swept']}"


def _param(doc, layer, parameter):
    rows = [r for r in doc["coverage"][layer]["parameters"] if r["parameter"] == parameter]
    assert len(rows) == 1, f"coverage rows of {layer}.{parameter}={len(rows)}, but should be 1 {TAG}"
    return rows[0]


def test_coverage_of_the_run_cases(report):
    # By hand from report_cases.yaml: Conv2D arange-2x2 (kernel 2, valid, batch 1); Conv1D seq swept over
    # valid/same (input (2, 9, 3)); DepthwiseConv2D wide; no separable case.
    cov = report["doc"]["coverage"]
    counts = {k: v["cases"] for k, v in cov.items()}
    want = {**dict.fromkeys(LAYERS, 0), "Conv1D": 2, "Conv2D": 1, "DepthwiseConv2D": 1}   # every other kind: 0
    assert counts == want, f"coverage case counts={counts}, but should be {want} {TAG}"
    pad = _param(report["doc"], "Conv1D", "padding")
    assert (pad["values"], pad["buckets"], pad["missing"]) == (
        {"valid": 1, "same": 1}, {"valid": 1, "same": 1, "causal": 0}, ["causal"]), \
        f"Conv1D padding coverage={pad}, but should be valid 1, same 1, causal NOT COVERED {TAG}"
    batch = _param(report["doc"], "Conv1D", "batch")
    assert (batch["values"], batch["missing"]) == ({"2": 2}, ["1"]), f"Conv1D batch coverage={batch} {TAG}"
    ks = _param(report["doc"], "Conv2D", "kernel_size")
    assert (ks["values"], ks["buckets"]["even"], ks["missing"]) == ({"2": 1}, 1, ["1", "odd > 1", ">= 4", "rectangular"]), \
        f"Conv2D kernel_size coverage={ks}, but should be 2 (1 case), even, the rest missing {TAG}"
    assert _param(report["doc"], "Conv2D", "data_format")["missing"] == ["channels_first"], f"{TAG}"
    params = {k: {r["parameter"] for r in v["parameters"]} for k, v in cov.items()}
    assert "groups" in params["Conv2D"] and "depth_multiplier" not in params["Conv2D"] \
        and "depth_multiplier" in params["DepthwiseConv2D"] and "groups" not in params["DepthwiseConv2D"], \
        f"parameters per kind={params}, but groups belongs to Conv only and depth_multiplier to depthwise"


def test_coverage_section_follows_the_matrix(report):
    html, doc = report["html"], report["doc"]
    assert 'id="coverage"' in html and html.index('id="coverage"') > html.index('id="matrix"'), \
        "index.html should have the coverage section after the case matrix"
    section = html[html.index('<details id="coverage">'):]
    section = section[:section.index("</details>")]
    conv1d = re.search(r'<div class="cov-kind" data-layer="Conv1D"[^>]*>(.*?)</table></div>', section, re.S)
    assert conv1d and "2 cases" in conv1d.group(1), "the Conv1D block (2 cases) is missing from the coverage section"
    row = re.search(r'<tr data-parameter="padding" class="has-miss">(.*?)</tr>', conv1d.group(1), re.S)
    assert row, "Conv1D's padding row should be marked as having something not covered"
    assert re.search(r'data-bucket="valid"[^>]*>valid <i>1</i>', row.group(1)) \
        and re.search(r'data-bucket="same"[^>]*>same <i>1</i>', row.group(1)), \
        f"Conv1D padding row={row.group(1)}, but should show valid and same with 1 case each"
    assert 'data-missing="causal"' in row.group(1) and "NOT COVERED" in row.group(1), \
        f"Conv1D padding row={row.group(1)}, but should mark causal NOT COVERED"
    assert re.search(r'<div class="cov-kind cov-none" data-layer="SeparableConv1D"', section), \
        "a layer kind without cases should be listed as not covered at all"
    total = sum(len(r["missing"]) for v in doc["coverage"].values() for r in v["parameters"])
    assert f'data-missing="{total}">{total}</b>' in section, f"the section's total of gaps should be {total}"


# ---------------------------------------------------------------- index.html

def _embedded(html: str, element_id: str):
    m = re.search(rf'<script type="application/json" id="{element_id}">(.*?)</script>', html, re.S)
    assert m, f"<script id={element_id}> missing from index.html"
    return json.loads(m.group(1))


def test_page_is_self_contained(report):
    html = report["html"]
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", html), "index.html loads something over the network"
    assert "<link" not in html and "@import" not in html and "http://" not in html and "https://" not in html, \
        "index.html refers to an outside resource"
    assert html.count("<script") >= 3 and "<style>" in html, "index.html should inline its style and scripts"


def test_page_structure_and_embedded_data(report):
    html, doc = report["html"], report["doc"]
    for section in ('id="summary"', 'id="summary-table"', 'id="environment"', 'id="tolerance"', 'id="matrix"',
                    'id="f-layer"', 'id="f-verdict"', 'id="f-text"'):
        assert section in html, f"{section} missing from index.html"
    assert f'<tr data-engine="{FLIP_NAME}"><th>{FLIP_NAME}</th><td class="num count0" data-verdict="pass">0</td>' \
           f'<td class="num" data-verdict="fail">4</td>' in html, "summary row of the flipped engine: 0 pass, 4 fail"
    data = _embedded(html, "report-data")
    ids = [c["id"] for c in data["cases"]]
    assert ids == [c["id"] for c in doc["cases"]], f"embedded case ids={ids}"
    # The matrix data is slim; the heavy per-case data sits in one lazily parsed script per case.
    assert "worst_elements" not in json.dumps(data), "worst elements belong in the per-case data, not the matrix data"
    assert len(re.findall(r'<script type="application/json" id="d-\d+">', html)) == len(ids)


def test_script_end_tag_in_text_cannot_break_the_page(report):
    html = report["html"]
    assert "</script><b>" not in html, "a case's text closed the <script> element"
    data = _embedded(html, "report-data")
    assert data["cases"][0]["description"].startswith("hand-computed; tricky text </script><b>not bold</b> &")


def _decode(enc):
    codes = np.frombuffer(base64.b64decode(enc["b64"]), dtype=np.uint8).astype(float)
    vals = 10 ** (enc["lo"] + (codes - 1) / 253 * (enc["hi"] - enc["lo"]))
    return np.where(codes == 0, 0.0, np.where(codes == 255, np.inf, vals))


def test_heatmap_of_failing_case_holds_the_ratios(report):
    html, doc = report["html"], report["doc"]
    lazy = _embedded(html, "d-0")
    pics = lazy["e"][FLIP_NAME]["pics"]
    assert pics["worst"]["channels"] == [0] and pics["worst"]["shape"] == [2, 2], f"worst maps={pics['worst']}"
    ratio = _decode(pics["worst"]["ratio"]).reshape(2, 2)
    want = {tuple(w["index"][1:3]): w["ratio"] for w in rec(doc, "arange-2x2", FLIP_NAME)["worst_elements"]}
    for (i, j), value in want.items():
        # 253 codes over the ratios' log range: each value is within half a step of its exact ratio.
        assert ratio[i, j] == pytest.approx(value, rel=0.02), f"heatmap ratio at {(i, j)}={ratio[i, j]}, but should be {value}"
    assert "arange-2x2" in lazy["yaml"] and "init: arange" in lazy["yaml"], f"yaml={lazy['yaml']}"
    wide = _embedded(html, "d-3")["e"][FLIP_NAME]["pics"]
    assert wide["channels"] == 6 and len(wide["worst"]["channels"]) == 4 and wide["all"]["channels"] == list(range(6)), \
        "a 6-channel failure shows the 4 worst channels and offers all 6"


# ---------------------------------------------------------------- pictures (hand-made arrays)

def test_border_error_in_one_channel_is_described_and_survives_downsampling():
    y_o = np.zeros((1, 130, 70, 3))
    y = y_o.copy()
    y[0, 0, :, 1] = 2.0          # top row of channel 1 only
    y[0, 77, 35, 2] = 0.5        # one interior element of channel 2, under the bound
    extra, pics = pictures.engine_pictures(y.astype(np.float32), y_o, np.ones_like(y_o), False, pictures.FAILING)
    p = extra["pattern"]
    assert (p["n_over"], p["channels_over"], p["border_only"]) == (70, [1], True), f"pattern={p}"
    assert pics["worst"]["channels"][0] == 1 and pics["worst"]["cell"] == [3, 2] and pics["worst"]["shape"] == [44, 35], \
        f"worst maps: channels={pics['worst']['channels']} cell={pics['worst']['cell']} shape={pics['worst']['shape']}"
    ratio = _decode(pics["worst"]["ratio"]).reshape(3, 44, 35)
    k = pics["worst"]["channels"].index(2)
    assert ratio[k, 77 // 3, 35 // 2] == pytest.approx(0.5, rel=0.02), "max pooling lost the single element"
    assert np.count_nonzero(ratio[k]) == 1, "a single nonzero element should give a single nonzero cell"
    h = extra["ratio_histogram"]
    assert sum(h["counts"]) + h["zero"] + h["below"] + h["above"] == y.size, "histogram must count every element"


def test_progress_on_a_pipe_prints_the_start_and_each_tenth():
    stream = io.StringIO()
    bar = Progress(20, stream)
    for i in range(20):
        bar.step(f"case{i}")
    bar.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 11 and lines[0].startswith("report: 1/20 pairs (5%)") \
        and lines[-1].startswith("report: 20/20 pairs (100%)"), f"progress lines={lines}"


# ---------------------------------------------------------------- baseline

@pytest.mark.parametrize("old, new, change", [
    (("pass", 0.10), ("pass", 0.15), None),          # x1.5: noise
    (("pass", 0.10), ("pass", 0.25), "ratio"),       # x2.5
    (("pass", 0.40), ("pass", 0.15), "ratio"),       # /2.7
    (("pass", 0.001), ("pass", 0.009), None),        # both under the 1% floor
    (("fail", 0.9), ("fail", 1.1), "ratio"),         # crosses the bound with the same verdict
    (("pass", 0.5), ("fail", 3e5), "verdict"),
    (("fail", float("inf")), ("fail", float("inf")), None),
])
def test_baseline_rule(old, new, change):
    def record(verdict, ratio):
        return {"case_id": "c", "engine": "e", "verdict": verdict, "metrics": {"max_ratio": ratio}}

    got = baseline.classify(record(*new), record(*old))["change"]
    assert got == change, f"change={got}, but should be {change} for {old} -> {new}"


def test_baseline_marks_changed_pairs(report, tmp_path):
    old = json.loads(json.dumps(report["doc"]))
    for r in old["results"]:
        if r["case_id"] == "arange-2x2" and r["engine"] == FLIP_NAME:
            r["verdict"], r["metrics"]["max_ratio"] = "pass", 0.5
    gone = {"case_id": "removed-case", "file": str(report["cases"]), "engine": "oracle", "verdict": "pass", "metrics": None}
    elsewhere = {**gone, "case_id": "case-of-another-file", "file": "cases/other.yaml"}
    old["results"] += [gone, elsewhere]
    old["environment"]["numpy"] = "1.0.0"
    (tmp_path / "old.json").write_text(json.dumps(old))
    rc = run_report(report["cases"], tmp_path / "out", "--baseline", str(tmp_path / "old.json"))
    doc = strict_json(tmp_path / "out" / "results.json")
    changed = {(r["case_id"], r["engine"]): r["baseline"]["change"] for r in doc["results"] if r["baseline"]["change"]}
    assert rc == 1 and changed == {("arange-2x2", FLIP_NAME): "verdict"}, f"changed={changed}, but should be the edited pair"
    assert doc["baseline"]["gone"] == [{"case_id": "removed-case", "engine": "oracle", "check": "forward",
                                        "verdict": "pass"}] \
        and doc["baseline"]["not_compared"] == 1, f"gone={doc['baseline']['gone']}, but should be the removed case only"
    html = (tmp_path / "out" / "index.html").read_text()
    assert 'id="baseline-summary"' in html and "numpy: 1.0.0 &rarr; " + np.__version__ in html, \
        "the page should summarise the baseline, with the environment change"


def test_incompatible_baseline_is_refused_before_running(report, tmp_path, capsys):
    (tmp_path / "old.json").write_text(json.dumps({"schema_version": "2.0", "results": []}))
    rc = run_report(report["cases"], tmp_path / "out", "--baseline", str(tmp_path / "old.json"))
    err = capsys.readouterr().err
    assert rc == 2 and "schema_version='2.0', but should be 1.x" in err, f"rc={rc}, stderr={err}"
    assert not (tmp_path / "out").exists(), "nothing should be written for a refused baseline"


# ---------------------------------------------------------------- atomic writing

def _snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_failing_run_leaves_previous_report_intact(report, tmp_path, monkeypatch):
    out = tmp_path / "out"
    assert run_report(report["cases"], out) == 1
    before = _snapshot(out)
    calls = []

    def crash_on_third(case, engine, check="forward", diagnoser=None):
        calls.append(engine)
        if len(calls) == 3:
            raise KeyboardInterrupt("stopped halfway")
        from harness.judge.runner import run_one
        return run_one(case, engine, check, diagnoser)

    monkeypatch.setattr("harness.report.collect.run_one", crash_on_third)
    assert run_report(report["cases"], out) == 130   # interrupted: the CLI says so in its exit code
    assert _snapshot(out) == before, "a run stopped halfway changed the previous report"


def test_failing_write_leaves_previous_files_and_no_temporaries(tmp_path, monkeypatch):
    a, b = tmp_path / "results.json", tmp_path / "index.html"
    write.write_all({a: "old json", b: "old html"})
    real_fsync, calls = os.fsync, []

    def fsync_fails_second_time(fd):
        calls.append(fd)
        if len(calls) == 2:
            raise OSError("disk full")
        real_fsync(fd)

    monkeypatch.setattr(write.os, "fsync", fsync_fails_second_time)
    with pytest.raises(OSError):
        write.write_all({a: "new json", b: "new html"})
    assert (a.read_text(), b.read_text()) == ("old json", "old html"), "a failed write replaced a previous file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.html", "results.json"], "temporaries left behind"


def test_command_line_has_report_options():
    done = subprocess.run([sys.executable, "-m", "harness", "report", "--help"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0 and "--baseline" in done.stdout and "--out" in done.stdout, \
        f"`python -m harness report --help`: rc={done.returncode} {done.stdout[-300:]} {done.stderr[-300:]}"


def test_report_import_loads_no_framework():
    code = ("import sys, harness.frontends.cli, harness.frontends.report_command, harness.report.html, harness.report.collect;"
            "bad = [m for m in ('tensorflow', 'torch', 'keras') if m in sys.modules]; print(bad); sys.exit(bool(bad))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"frameworks imported by the report modules: {done.stdout} {done.stderr}"
