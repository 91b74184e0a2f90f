"""`python -m harness report` runs a case file's `models:` entries: each entry's model page and its failing layers'
repros under the report's models/, a row per entry in the page's summary, results.json's `models`, and a failing or
broken entry in the exit code. A small net of our own (tests/models/ports/small_net.py, 16x16) keeps it quick."""
from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
from test_report_helpers import strict_json
from testkit import ROOT

from harness.cases.suite import load_suite_file
from harness.frontends.cli import main

PORTS = ROOT / "tests" / "models"


def _write(folder: Path) -> Path:
    """small.keras (the small net, seeded and randomised), a port file (a correct port, one with the bias of its
    SeparableConv2D on the depthwise step, one that does not build) and a case file of one case and three entries."""
    import sys

    sys.path.insert(0, str(PORTS))
    try:
        import ports
    finally:
        sys.path.remove(str(PORTS))
    ports.keras_model("small_net", 16).save(folder / "small.keras")
    (folder / "port.py").write_text(textwrap.dedent(f"""\
        import sys
        sys.path.insert(0, {str(PORTS)!r})
        import keras
        import ports
        SMALL = ports.PORTS["small_net"]

        def _built(bug=None):
            port = SMALL.Port(16, bug=bug)
            SMALL.transfer(keras.saving.load_model({str(folder / 'small.keras')!r}), port, bug=bug)
            return port.eval()

        def good():
            return _built()

        def bias():
            return _built("separable_bias")

        def broken():
            raise RuntimeError("this port does not build")
        """))
    f = folder / "mixed.yaml"
    f.write_text(textwrap.dedent("""\
        cases:
          - {id: tiny, layer: Conv2D, input_shape: [1, 5, 5, 2], config: {filters: 2, kernel_size: 3}}
        models:
          - {id: good, keras: small.keras, port: port.py:good}
          - {id: bias, keras: small.keras, port: port.py:bias}
          - {id: broken, keras: small.keras, port: port.py:broken}
        """))
    return f


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    pytest.importorskip("torch")
    pytest.importorskip("keras")
    folder = tmp_path_factory.mktemp("models")
    f = _write(folder)
    out = folder / "out"
    rc = main(["report", str(f), "--engine", "oracle", "--out", str(out)])
    return {"rc": rc, "folder": folder, "file": f, "out": out, "doc": strict_json(out / "results.json"),
            "html": (out / "index.html").read_text(encoding="utf-8")}


def _entry(doc, entry_id):
    found = [m for m in doc["models"] if m["id"] == entry_id]
    assert len(found) == 1, f"models entries with id {entry_id}={len(found)}, but should be 1"
    return found[0]


def test_a_failing_and_a_broken_entry_fail_the_run(mixed):
    assert mixed["rc"] == 1, f"exit code={mixed['rc']}, but should be 1 (a port fails a layer, one does not build)"
    doc = mixed["doc"]
    assert [(m["id"], m["verdict"]) for m in doc["models"]] == [("good", "pass"), ("bias", "fail"),
                                                                ("broken", "error")], f"models={doc['models']}"
    assert [r["verdict"] for r in doc["results"]] == ["pass"], "the file's case ran beside its model entries"


def test_results_json_holds_each_entrys_diff(mixed):
    good, bias, broken = (_entry(mixed["doc"], i) for i in ("good", "bias", "broken"))
    layers = bias["diff"]["layers"]
    assert bias["culprit"] == "sep" == bias["diff"]["culprit"], f"culprit={bias['culprit']}"
    assert "bias" in bias["cause"] and bias["cause"] == next(d["cause"] for d in layers if d["name"] == "sep")
    assert bias["mapped"] == sum(1 for d in layers if d["modules"]) > 0 and bias["failed"] == 1, \
        f"mapped={bias['mapped']}, failed={bias['failed']}"
    assert good["diff"]["passed"] is True and good["culprit"] is None and good["repros"] == []
    assert broken["diff"] is None and "mixed.yaml::broken" in broken["message"] \
        and "this port does not build" in broken["message"], f"error message={broken['message']}"


def test_model_page_and_repros_are_written_beside_the_report(mixed):
    out, bias = mixed["out"], _entry(mixed["doc"], "bias")
    assert bias["page"] == "models/bias.html" and "FAIL: first divergence at sep" in (out / bias["page"]).read_text()
    assert "PASS" in (out / "models" / "good.html").read_text()
    assert sorted(bias["repros"]) == ["models/bias/sep.npz", "models/bias/sep.yaml"], f"repros={bias['repros']}"
    page = (out / bias["page"]).read_text()   # the failing layer's row links its repro (relative to the page)
    assert "<a href='bias/sep.yaml'>sep.yaml</a>" in page and "<a href='bias/sep.npz'>sep.npz</a>" in page
    repro = load_suite_file(out / "models" / "bias" / "sep.yaml")
    assert len(repro.cases) == 1 and not repro.errors, f"the repro is not a valid case file: {repro.errors}"
    assert not list(out.glob(".models.*")), "the staging folder should be gone"


def test_the_page_lists_every_entry_with_its_verdict_and_links(mixed):
    html = mixed["html"]
    banner = re.search(r'id="verdict-banner" data-bad="(\d+)">([^<]*)<', html)
    assert banner and banner.group(1) == "2" and "2 of 3 model entries fail or error" in banner.group(2), \
        f"banner={banner and banner.groups()}"
    rows = dict(re.findall(r'<tr data-model="(\w+)" data-verdict="(\w+)">', html))
    assert rows == {"good": "pass", "bias": "fail", "broken": "error"}, f"model rows={rows}"
    row = html.split('<tr data-model="bias"', 1)[1].split("</tr>", 1)[0]
    assert '<a href="models/bias.html">' in row and '<a href="models/bias/sep.yaml">' in row and "port.py:bias" in row
    assert re.search(r"first <code>sep</code>: config: bias", row), f"culprit and cause missing from {row}"


def test_a_file_of_model_entries_alone_is_a_report(mixed):
    out = mixed["out"]
    rc = main(["report", str(mixed["file"]), "--case", "good", "--engine", "oracle", "--out", str(out)])
    doc = strict_json(out / "results.json")
    assert rc == 0 and doc["results"] == [] and [m["id"] for m in doc["models"]] == ["good"], \
        f"exit code={rc}, results={len(doc['results'])}, models={[m['id'] for m in doc['models']]}"
    assert not (out / "models" / "bias.html").exists(), "the previous run's model pages should be gone"
    assert "all 1 model entries pass" in (out / "index.html").read_text(encoding="utf-8")
