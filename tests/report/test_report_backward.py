"""The report's backward items (a case's `check: [forward, backward]`): one record per (case, engine, check) with
the gradient tensors' metrics, summary counts, pictures per gradient tensor, baseline and merge keyed by the
check, and the page's columns and data."""
from __future__ import annotations

import base64
import io
import json
import re
import shutil

import numpy as np
import pytest

from harness.frontends.cli import main
from harness.report import baseline, merge, pictures
from harness.report import html as report_html
from harness.report.collect import collect
from harness.report.merge import SIDECAR
from harness.cases.schema import load_file
from test_report_helpers import BW_FLIP, run_backward_report, strict_json, write_backward_cases

BW = BW_FLIP.split("=")[0]
TAG = "[report_backward_cases.yaml]"
BOTH = ("forward", "backward")


@pytest.fixture(scope="module")
def bw(tmp_path_factory):
    """One report of the backward cases in the oracle and the plug-in that flips the kernel gradients."""
    folder = tmp_path_factory.mktemp("backward")
    cases = write_backward_cases(folder)
    rc = run_backward_report(cases, folder / "out")
    return {"rc": rc, "folder": folder, "cases": cases, "doc": strict_json(folder / "out" / "results.json"),
            "html": (folder / "out" / "index.html").read_text(encoding="utf-8")}


def rec(doc, case_id, engine, check):
    found = [r for r in doc["results"] if (r["case_id"], r["engine"], r["check"]) == (case_id, engine, check)]
    assert len(found) == 1, f"records for {case_id}[{engine} {check}]={len(found)}, but should be 1 {TAG}"
    return found[0]


def embedded(html: str, element_id: str):
    m = re.search(rf'<script type="application/json" id="{element_id}">(.*?)</script>', html, re.S)
    assert m, f"<script id={element_id}> missing from index.html"
    return json.loads(m.group(1))


def decode(enc):
    codes = np.frombuffer(base64.b64decode(enc["b64"]), dtype=np.uint8).astype(float)
    vals = 10 ** (enc["lo"] + (codes - 1) / 253 * (enc["hi"] - enc["lo"]))
    return np.where(codes == 0, 0.0, np.where(codes == 255, np.inf, vals))


# ---------------------------------------------------------------- results.json

def test_every_check_of_a_case_is_an_item_in_run_order(bw):
    doc = bw["doc"]
    assert bw["rc"] == 1, f"exit code={bw['rc']}, but should be 1 (the plug-in's gradients are wrong) {TAG}"
    assert doc["schema_version"] == "1.6", f"schema_version={doc['schema_version']}, but should be 1.6"
    got = [(r["case_id"], r["engine"], r["check"]) for r in doc["results"]]
    want = [(case, engine, check) for case, checks in (("bw-conv2d", BOTH), ("bw-dw1d-cf", BOTH), ("fw-only", BOTH[:1]))
            for check in checks for engine in ("oracle", BW)]
    assert got == want, f"items={got}, but should be every check of each case, forward first {TAG}"


def test_backward_record_names_the_tensor_that_decided(bw):
    r = rec(bw["doc"], "bw-conv2d", BW, "backward")
    grads = r["gradients"]
    assert r["verdict"] == "fail" and r["outcome"] == "fail" and r["tensor"] == "kernel", \
        f"{r['verdict']}, tensor={r['tensor']}, but should fail on the kernel's gradient {TAG}"
    # dx passes and is judged first; judging stops at the failing dkernel: dbias is not judged.
    assert list(grads) == ["x", "kernel"], f"gradients judged={list(grads)}, but should be x, kernel {TAG}"
    assert float(grads["x"]["max_ratio"]) <= 1 < float(grads["kernel"]["max_ratio"]), f"gradients={grads}"
    assert (grads["x"]["shape"], grads["x"]["n_elements"]) == ([2, 6, 5, 3], 180), f"dx: {grads['x']}"
    assert (grads["kernel"]["shape"], grads["kernel"]["n_elements"]) == ([3, 3, 3, 4], 108), \
        f"dkernel: {grads['kernel']}, but should be the Keras layout (kh, kw, C_in, C_out)"
    assert r["metrics"] == {k: v for k, v in grads["kernel"].items() if k != "shape"}, \
        "the record's metrics should be those of its deciding tensor"
    assert r["message"].startswith(f"{BW}: dkernel max error/bound ") and "::bw-conv2d]" in r["message"], \
        f"message={r['message']}, but should name dkernel and the case"
    assert r["repro"].endswith("--check backward") and "--case bw-conv2d" in r["repro"], f"repro={r['repro']}"
    # The histogram, worst elements and pattern are the deciding tensor's, indexed in its own shape.
    assert len(r["worst_elements"]) == 5 and r["worst_elements"][0]["index"] == r["metrics"]["worst_index"], \
        f"worst elements={r['worst_elements'][:1]}, metrics worst_index={r['metrics']['worst_index']}"
    h = r["ratio_histogram"]
    assert sum(h["counts"]) + h["zero"] + h["below"] + h["above"] + h["nonfinite"] == 108, "histogram of dkernel"
    assert r["pattern"]["n_over"] == r["metrics"]["n_over"] and r["pattern"]["border_only"] is False, r["pattern"]


def test_forward_and_reference_records(bw):
    doc = bw["doc"]
    fwd = rec(doc, "bw-conv2d", BW, "forward")
    assert (fwd["verdict"], fwd["tensor"], fwd["gradients"]) == ("pass", None, None), \
        f"forward item: {fwd['verdict']}, tensor={fwd['tensor']}, gradients={fwd['gradients']}"
    assert fwd["metrics"]["n_elements"] == 2 * 6 * 5 * 4 and "--check" not in fwd["repro"], f"forward: {fwd}"
    ref = rec(doc, "bw-conv2d", "oracle", "backward")
    assert ref["verdict"] == "pass" and list(ref["gradients"]) == ["x", "kernel", "bias"], \
        f"oracle backward: {ref['verdict']}, gradients={list(ref['gradients'])}, but should pass on x, kernel, bias"
    assert all(float(m["max_ratio"]) == 0 for m in ref["gradients"].values()), f"oracle gradients={ref['gradients']}"
    cf = rec(doc, "bw-dw1d-cf", BW, "backward")
    assert cf["gradients"]["x"]["shape"] == [2, 3, 8], f"dx of a channels_first case={cf['gradients']['x']['shape']}"


def test_summary_counts_both_checks_and_backward_apart(bw):
    s = bw["doc"]["summary"]
    mine, back = s[BW], s[BW]["backward"]
    assert (mine["pass"], mine["fail"], mine["total"]) == (3, 2, 5), f"summary[{BW}]={mine}"
    assert (back["pass"], back["fail"], back["total"], back["max_ratio_pass"]) == (0, 2, 2, None), \
        f"summary[{BW}].backward={back}"
    assert (s["oracle"]["backward"]["pass"], s["oracle"]["backward"]["total"]) == (2, 2), f"oracle={s['oracle']}"
    html = bw["html"]
    assert f'<tr data-engine="{BW}" data-check="backward" class="sub">' in html, "no backward row in the summary"
    assert "2 of 10 (case, engine, check) items fail or error" in html, "the banner should count items"


def test_tolerance_model_states_the_backward_bound(bw):
    model = bw["doc"]["tolerance"]["model"]
    assert "G_T" in model and "A_T" in model and "|dy|" in model, f"tolerance model={model}"


# ---------------------------------------------------------------- pictures

def test_gradient_pictures_of_a_kernel_keep_its_own_indices():
    shape = (3, 2, 5, 4)                         # (kh, kw, C_in, C_out)
    want = np.zeros(shape)
    got = want.copy()
    got[2, 1, 3, 0] = 5.0
    extra, pics = pictures.gradient_pictures("kernel", got.astype(np.float32), want, np.ones(shape), False,
                                             pictures.FAILING)
    assert extra["worst_elements"][0]["index"] == [2, 1, 3, 0], f"worst={extra['worst_elements'][0]}"
    # per output channel a map of the 6 taps (rows, kh x kw in C order) x 5 input channels
    assert (pics["channels"], pics["grid"], pics["shape"]) == (4, [6, 5], list(shape)), \
        f"kernel view: channels={pics['channels']} grid={pics['grid']}"
    assert pics["worst_at"] == {"channel": 0, "pos": [2 * 2 + 1, 3]}, f"worst_at={pics['worst_at']}"
    assert pics["view"]["channel"] == "output channel" and "tap" in pics["view"]["rows"], f"view={pics['view']}"
    assert extra["pattern"]["n_over"] == 1 and extra["pattern"]["border_only"] is False, extra["pattern"]
    extra, pics = pictures.gradient_pictures("bias", np.array([0, 0, 3.0]), np.zeros(3), np.ones(3), False,
                                             pictures.FAILING)
    assert (pics["channels"], pics["grid"], extra["worst_elements"][0]["index"]) == (1, [1, 3], [2]), \
        f"bias: one strip of 3, worst at 2: {pics['channels']}, {pics['grid']}, {extra['worst_elements'][0]}"
    x = np.zeros((2, 3, 4, 4))
    x2 = x.copy()
    x2[1, 2, 0, 3] = 2.0
    extra, pics = pictures.gradient_pictures("x", x2, x, np.ones(x.shape), True, pictures.FAILING)
    assert (pics["channels"], pics["grid"], extra["worst_elements"][0]["index"]) == (3, [4, 4], [1, 2, 0, 3]), \
        "dx is drawn as an output is, in the input's data_format"
    assert extra["pattern"]["border_only"] is True, "dx keeps the border test (a padding error shows there)"


def test_page_data_has_a_column_per_item_and_pictures_per_tensor(bw):
    html, doc = bw["html"], bw["doc"]
    data = embedded(html, "report-data")
    keys = [it["key"] for it in data["meta"]["items"]]
    assert keys == ["oracle", "oracle:backward", BW, f"{BW}:backward"], f"page items={keys}"
    assert set(data["cases"][0]["r"]) == set(keys) and set(data["cases"][2]["r"]) == {"oracle", BW}, \
        "a case's records are keyed by item; the forward-only case has no backward item"
    assert f'data-item="{BW}:backward">{BW}<br><span class="small">backward</span>' in html, \
        "the matrix head should have the backward column beside the engine's"
    lazy = embedded(html, "d-0")["e"]
    forward = rec(doc, "bw-conv2d", BW, "forward")
    assert forward["verdict"] == "pass" and float(forward["metrics"]["max_ratio"]) < pictures.NEAR_BOUND, \
        f"the forward item should pass far under its bound: {forward['verdict']}, {forward['metrics']['max_ratio']}"
    assert "pics" not in lazy[BW] and "worst_elements" not in lazy[BW] and lazy[BW]["ratio_histogram"], \
        f"a pass far under its bound: its histogram, no maps, no worst elements on the page: {sorted(lazy[BW])}"
    assert forward["worst_elements"] and forward["ratio_histogram"], "results.json keeps them all"
    g = lazy[f"{BW}:backward"]["pics"]
    assert (g["check"], g["tensor"], list(g["tensors"])) == ("backward", "kernel", ["x", "kernel"]), \
        f"backward pictures: {g['check']}, default {g['tensor']}, tensors {list(g['tensors'])}"
    k = g["tensors"]["kernel"]["pics"]
    assert (k["channels"], k["grid"]) == (4, [9, 3]), f"dkernel view: {k['channels']} channels, grid {k['grid']}"
    top = float(rec(doc, "bw-conv2d", BW, "backward")["gradients"]["kernel"]["max_ratio"])
    assert decode(k["worst"]["ratio"]).max() == pytest.approx(top, rel=0.02), "the dkernel map lost its worst ratio"
    assert g["tensors"]["kernel"]["worst_elements"] == rec(doc, "bw-conv2d", BW, "backward")["worst_elements"], \
        "the deciding tensor's worst elements are the record's"
    x = g["tensors"]["x"]["pics"]
    assert (x["channels"], x["grid"], x["batch"]) == (3, [6, 5], 2), f"dx view: {x['channels']}, {x['grid']}"
    dw = embedded(html, "d-1")["e"][f"{BW}:backward"]["pics"]["tensors"]
    cf = dw["x"]["pics"]
    assert (cf["channels"], cf["grid"]) == (3, [1, 8]), f"dx of the channels_first case: {cf['channels']}, {cf['grid']}"
    dk = dw["kernel"]["pics"]   # DepthwiseConv1D kernel (k, C, M) = (3, 3, 2): per multiplier, 3 taps x 3 channels
    assert (dk["channels"], dk["grid"], dk["view"]["channel"]) == (2, [3, 3], "depth multiplier"), \
        f"depthwise dkernel view: {dk['channels']}, {dk['grid']}, {dk['view']}"
    assert "pics" not in embedded(html, "d-0")["e"].get("oracle:backward", {}), "the reference has no pictures"


def test_progress_label_names_the_check(tmp_path):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    cases, errors = load_file(write_backward_cases(tmp_path))
    assert not errors, errors
    stream = Terminal()
    got = collect(cases[:1], ["oracle"], stream)
    assert [r["check"] for r in got.records] == ["forward", "backward"], "both checks of the case should run"
    text = stream.getvalue()
    assert "2/2" in text and "[oracle backward] pass" in text, f"progress={text!r}"


# ---------------------------------------------------------------- baseline

def test_baseline_keeps_forward_and_backward_items_apart(bw, tmp_path):
    old = json.loads(json.dumps(bw["doc"]))
    r = next(r for r in old["results"] if (r["case_id"], r["engine"], r["check"]) == ("bw-conv2d", BW, "backward"))
    r["verdict"], r["metrics"]["max_ratio"] = "pass", 0.5
    gone = dict(next(r for r in old["results"] if r["case_id"] == "fw-only" and r["engine"] == BW), check="backward")
    old["results"].append(gone)   # a backward item the run no longer has (the case dropped its backward check)
    (tmp_path / "old.json").write_text(json.dumps(old))
    assert run_backward_report(bw["cases"], tmp_path / "out", "--baseline", str(tmp_path / "old.json")) == 1
    doc = strict_json(tmp_path / "out" / "results.json")
    changed = {(r["case_id"], r["engine"], r["check"]): r["baseline"]["change"] for r in doc["results"]
               if r["baseline"]["change"]}
    assert changed == {("bw-conv2d", BW, "backward"): "verdict"}, \
        f"changed={changed}, but should be the edited backward item only, not the forward item of that engine"
    assert doc["baseline"]["gone"] == [{"case_id": "fw-only", "engine": BW, "check": "backward", "verdict": "pass"}], \
        f"gone={doc['baseline']['gone']}"
    html = (tmp_path / "out" / "index.html").read_text(encoding="utf-8")
    assert f"<code>fw-only</code> [{BW} backward] was pass" in html, "the gone backward item should be listed"


def test_a_baseline_of_schema_1_3_has_forward_items_only(bw):
    doc = json.loads(json.dumps(bw["doc"]))
    old = {**doc, "schema_version": "1.3",
           "results": [{k: v for k, v in r.items() if k not in ("check", "tensor", "gradients")}
                       for r in doc["results"] if r["check"] == "forward"]}
    section = baseline.compare(doc["results"], old, "old.json")
    change = {(r["case_id"], r["engine"], r["check"]): r["baseline"]["change"] for r in doc["results"]}
    assert all(c is None for (_, _, check), c in change.items() if check == "forward"), \
        f"forward items against a 1.3 baseline={change}, but should be matched and unchanged"
    assert all(c == "new" for (_, _, check), c in change.items() if check == "backward"), \
        f"backward items against a 1.3 baseline={change}, but should be new (never compared with forward ones)"
    assert section["changed"] == {"verdict": 0, "ratio": 0, "new": 4} and section["gone"] == [], f"section={section}"


# ---------------------------------------------------------------- sharded runs

RUN_FIELDS = ("created", "command", "duration_s")


def _without_run_fields(doc):
    doc = {k: v for k, v in doc.items() if k not in RUN_FIELDS}
    doc["results"] = [{k: v for k, v in r.items() if k != "duration_s"} for r in doc["results"]]
    return doc


def test_merged_shards_keep_forward_and_backward_items(tmp_path):
    cases = write_backward_cases(tmp_path)
    whole = run_backward_report(cases, tmp_path / "whole")
    shards = []
    for i in (1, 2):
        run_backward_report(cases, tmp_path / f"shard{i}", "--shard", f"{i}/2")
        shards.append(str(tmp_path / f"shard{i}" / "results.json"))
    assert main(["report", "--merge", *shards, "--out", str(tmp_path / "merged")]) == whole == 1
    a, b = strict_json(tmp_path / "whole" / "results.json"), strict_json(tmp_path / "merged" / "results.json")
    assert _without_run_fields(b) == _without_run_fields(a), "the merged results differ from the unsharded run's"
    side = {}
    for i in (1, 2):
        side.update(json.loads((tmp_path / f"shard{i}" / SIDECAR).read_text())["pictures"])
    # the forward item passes far under its bound: no maps (pictures.budget_for); the failing backward item has them
    assert set(side["bw-conv2d"]) == {f"{BW}:backward"}, f"shard pictures of bw-conv2d={set(side['bw-conv2d'])}"
    same = dict(a, **{k: b[k] for k in RUN_FIELDS})
    same["results"] = [dict(w, duration_s=m["duration_s"]) for w, m in zip(a["results"], b["results"])]
    page = (tmp_path / "merged" / "index.html").read_text(encoding="utf-8")
    assert report_html.render(same, side) == page, "the merged page differs from the unsharded one"
    # A shard that holds one item twice is not a shard of one run.
    bad = tmp_path / "bad"
    bad.mkdir()
    shutil.copy(tmp_path / "shard1" / SIDECAR, bad / SIDECAR)
    doc = strict_json(tmp_path / "shard1" / "results.json")
    doc["results"].append(dict(next(r for r in doc["results"] if r["check"] == "backward")))
    (bad / "results.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=r"the same \(case, engine, check\) item more than once"):
        merge.merge([str(bad / "results.json"), shards[1]], ["merge"])
