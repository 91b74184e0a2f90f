"""The report page in a real headless browser (Debian's chromium): loads without script error, summary visible,
a failing case's heatmaps drawn; a screenshot under reports/; size and load time of a 1000-case page."""
from __future__ import annotations

import copy
import re
import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

import pytest

import harness.frontends.report_command as report_command
from harness.frontends.cli import build_parser
from harness.report import baseline
from harness.report import html as report_html
from test_report_helpers import BW_FLIP, FLIP, ONLY_2D, multiply, write_backward_cases, write_cases
from testkit import ROOT

FLIP_NAME = FLIP.split("=")[0]
BW_NAME = BW_FLIP.split("=")[0]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


def _find_chromium() -> tuple[str | None, str]:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        return None, "chromium is not installed (`make browser` installs Debian's chromium with apt-get)"
    try:
        done = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"chromium at {path} does not start: {exc}"
    if done.returncode != 0:
        return None, f"chromium at {path} does not start: {done.stderr.strip()[:200]}"
    return path, ""


CHROMIUM, WHY_NOT = _find_chromium()
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason=WHY_NOT)


def chromium(url: str, profile: Path, *extra: str) -> str:
    done = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *extra, url],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"chromium exit code={done.returncode}, but should be 0: {done.stderr[-800:]}"
    return done.stdout


def html_attrs(dom: str) -> dict[str, str]:
    m = re.search(r"<html([^>]*)>", dom)
    assert m, f"no <html> element in the dumped DOM: {dom[:300]}"
    return dict(re.findall(r'([\w-]+)="([^"]*)"', m.group(1)))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    folder = tmp_path_factory.mktemp("browser")
    args = build_parser().parse_args(["report", str(write_cases(folder)), "--engine", "oracle", "--engine", FLIP,
                                      "--engine", ONLY_2D, "--out", str(folder)])
    doc, pictures = report_command.build(args)
    page = folder / "index.html"
    page.write_text(report_html.render(doc, pictures), encoding="utf-8")
    return {"folder": folder, "page": page, "doc": doc, "pictures": pictures}


def case_url(page: Path, case_id: str, engine: str) -> str:
    return f"{page.as_uri()}#case={quote(case_id, safe='')}&engine={quote(engine, safe='')}"


def test_page_loads_shows_summary_and_draws_failing_heatmap(built, tmp_path):
    dom = chromium(case_url(built["page"], "wide", FLIP_NAME), tmp_path / "profile",
                   "--virtual-time-budget=5000", "--dump-dom")
    attrs = html_attrs(dom)
    assert attrs.get("data-state") == "ready" and "data-error" not in attrs, \
        f"page state={attrs.get('data-state')}, error={attrs.get('data-error')}, but should be ready with no error"
    assert attrs.get("data-summary-visible") == "true", "the summary should be visible without scrolling"
    assert re.search(r'id="summary-table".*?<th>report-flip</th>', dom, re.S), "summary table lacks the engines"
    detail = dom.split('class="case-detail" data-case="wide"', 1)
    assert len(detail) == 2, "the case named in the URL was not opened"
    pics = detail[1].split(f'<div class="pics" data-engine="{FLIP_NAME}">', 1)
    assert len(pics) == 2, f"the {FLIP_NAME} heatmaps were not rendered for the failing case"
    drawn = len(re.findall(r'<canvas[^>]*class="map"[^>]*data-drawn="1"', pics[1].split('class="detail"')[0]))
    # 4 worst channels x (|diff|, ratio) + 2 legends + channel bars + histogram
    assert drawn >= 12, f"drawn canvases in the failing case={drawn}, but should be at least 12"
    assert "are over the bound, in 6 of 6 output channels" in pics[1], "the failure pattern sentence is missing"


def test_a_pass_far_under_its_bound_shows_its_histogram_without_maps(built, tmp_path):
    r = next(r for r in built["doc"]["results"] if (r["case_id"], r["engine"]) == ("wide", ONLY_2D.split("=")[0]))
    assert r["verdict"] == "pass" and float(r["metrics"]["max_ratio"]) < 0.5, f"wide [report-2d]: {r['verdict']}"
    dom = chromium(case_url(built["page"], "wide", ONLY_2D.split("=")[0]), tmp_path / "profile",
                   "--virtual-time-budget=5000", "--dump-dom")
    attrs = html_attrs(dom)
    assert attrs.get("data-state") == "ready" and "data-error" not in attrs, f"page error={attrs.get('data-error')}"
    body = dom.split('class="case-detail" data-case="wide"', 1)[1].split('class="mrow case-row', 1)[0]
    pics = body.split(f'<div class="pics" data-engine="{ONLY_2D.split("=")[0]}">', 1)
    assert len(pics) == 2, "the passing item's tab was not the one opened by the URL"
    shown = pics[1].split("</button>")[0]
    drawn = len(re.findall(r'<canvas[^>]*class="map"[^>]*data-drawn="1"', shown))
    assert drawn == 1, f"drawn canvases of a pass far under its bound={drawn}, but should be 1 (its histogram)"
    assert "All 720 elements are within the bound" in shown and 'class="small nomaps"' in shown, \
        "the pass should say all elements are within the bound and why it has no maps"


def test_screenshot_of_a_failing_case(built, tmp_path):
    shot = ROOT / "reports" / "screenshot.png"
    shot.parent.mkdir(exist_ok=True)
    chromium(case_url(built["page"], "wide", FLIP_NAME), tmp_path / "profile", "--virtual-time-budget=5000",
             f"--screenshot={shot}", "--window-size=1400,1800")
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000, f"screenshot {shot}: {len(data)} bytes, not a PNG page"


def test_baseline_changes_are_marked_in_the_matrix(built, tmp_path):
    old = copy.deepcopy(built["doc"])
    for r in old["results"]:
        if r["case_id"] == "arange-2x2" and r["engine"] == FLIP_NAME:
            r["verdict"] = "pass"
    doc = copy.deepcopy(built["doc"])
    doc["baseline"] = baseline.compare(doc["results"], old, "old/results.json")
    page = tmp_path / "index.html"
    page.write_text(report_html.render(doc, built["pictures"]), encoding="utf-8")
    dom = chromium(page.as_uri(), tmp_path / "profile", "--virtual-time-budget=3000", "--dump-dom")
    attrs = html_attrs(dom)
    assert attrs.get("data-state") == "ready", f"baseline page state={attrs.get('data-state')} {attrs.get('data-error')}"
    row = dom.split('data-case="arange-2x2"', 1)[1].split('class="mrow case-row', 1)[0]
    assert f"\u0394 {FLIP_NAME} pass\u2192fail" in row, "the changed verdict is not marked in the case's row"


def test_backward_item_has_its_column_message_and_tensor_picker(tmp_path):
    args = build_parser().parse_args(["report", str(write_backward_cases(tmp_path)), "--engine", "oracle",
                                      "--engine", BW_FLIP, "--out", str(tmp_path)])
    doc, pictures = report_command.build(args)
    page = tmp_path / "index.html"
    page.write_text(report_html.render(doc, pictures), encoding="utf-8")
    url = case_url(page, "bw-conv2d", BW_NAME) + "&check=backward"
    dom = chromium(url, tmp_path / "profile", "--virtual-time-budget=5000", "--dump-dom")
    attrs = html_attrs(dom)
    assert attrs.get("data-state") == "ready" and "data-error" not in attrs, \
        f"page state={attrs.get('data-state')}, error={attrs.get('data-error')}"
    row = dom.split('data-case="bw-conv2d"', 1)[1].split('class="detail"', 1)[0]
    assert re.search(rf'class="cell" data-engine="{BW_NAME}" data-check="backward" data-item="{BW_NAME}:backward" '
                     r'data-verdict="fail"', row), "the backward item should be its own failing cell, beside the forward"
    assert re.search(rf'data-engine="{BW_NAME}" data-check="forward" data-item="{BW_NAME}" data-verdict="pass"', row)
    detail = dom.split('class="case-detail" data-case="bw-conv2d"', 1)
    assert len(detail) == 2, "the case named in the URL was not opened"
    body = detail[1].split('class="mrow case-row', 1)[0]
    assert re.search(r'class="pill v-check">backward</span> <span class="mono">' + re.escape(f"{BW_NAME}: dkernel"),
                     body), "the failing backward item's message should show with a backward pill"
    pics = body.split(f'<div class="pics" data-engine="{BW_NAME}" data-check="backward">', 1)
    assert len(pics) == 2, "the backward item's tab was not the one opened by the URL"
    buttons = re.findall(r'<button type="button" data-tensor="(\w+)"[^>]*?(class="on")?>', pics[1])
    assert [b[0] for b in buttons] == ["x", "kernel"] and buttons[1][1], \
        f"tensor picker={buttons}, but should offer dx and dkernel, dkernel (the failing one) selected"
    shown = pics[1].split('<div class="tensor-pics" data-tensor="kernel">', 1)
    assert len(shown) == 2, "the dkernel pictures are not shown"
    drawn = len(re.findall(r'<canvas[^>]*class="map"[^>]*data-drawn="1"', shown[1]))
    # 4 output channels x (|diff|, ratio) + 2 legends + channel bars + histogram
    assert drawn >= 12, f"drawn canvases of dkernel={drawn}, but should be at least 12"
    assert "96 of 108 elements of dkernel" in shown[1] or "of 108 elements of dkernel" in shown[1], \
        "the dkernel pattern sentence is missing"
    shot = ROOT / "reports" / "screenshot-backward.png"
    shot.parent.mkdir(exist_ok=True)
    chromium(url, tmp_path / "profile", "--virtual-time-budget=5000", f"--screenshot={shot}",
             "--window-size=1400,2200")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{shot} is not a PNG"


def test_thousand_case_page_size_and_load_time(built, tmp_path):
    doc, pictures = multiply(built["doc"], built["pictures"], 1000)
    page = tmp_path / "index.html"
    start = time.perf_counter()
    page.write_text(report_html.render(doc, pictures), encoding="utf-8")
    render_s = time.perf_counter() - start
    size_mb = page.stat().st_size / 1e6
    last = doc["cases"][-1]["id"]
    dom = chromium(case_url(page, last, FLIP_NAME), tmp_path / "profile", "--dump-dom")
    attrs = html_attrs(dom)
    assert attrs.get("data-state") == "ready", f"1000-case page state={attrs.get('data-state')} {attrs.get('data-error')}"
    assert dom.count('class="mrow case-row') == 1000, "the matrix should list all 1000 cases"
    load_ms, detail_ms = float(attrs["data-load-ms"]), float(attrs.get("data-detail-ms", "nan"))
    print(f"\n1000-case page: {size_mb:.1f} MB written in {render_s:.2f} s; loaded and drawn in {load_ms:.0f} ms; "
          f"one case opened in {detail_ms:.0f} ms")
    # Generous limits for a slow CI machine; the measured values are in docs/results-json.md.
    assert size_mb < 40 and load_ms < 20_000, f"1000-case page: {size_mb:.1f} MB, {load_ms:.0f} ms"
