"""(e) of `make bench`: the report (results.json + index.html) of 1000 cases, written from a real one repeated."""
from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

from bench_common import PY, QUICK_SUBSET, SUBSET, Figure, check, command_text, failed, run


def multiply(doc: dict[str, Any], pictures: dict[str, Any], n_cases: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """A results document of ``n_cases`` cases made by repeating a real one (tests/test_report_helpers.multiply)."""
    out = copy.deepcopy(doc)
    out["cases"], out["results"], pics = [], [], {}
    by_case: dict[str, list[dict[str, Any]]] = {}
    for rec in doc["results"]:
        by_case.setdefault(rec["case_id"], []).append(rec)
    base = doc["cases"]
    for i in range(n_cases):
        info = copy.deepcopy(base[i % len(base)])
        old_id = info["id"]
        info["id"] = f"{old_id}-{i:04d}"
        out["cases"].append(info)
        out["results"] += [{**rec, "case_id": info["id"]} for rec in by_case.get(old_id, [])]
        if old_id in pictures:
            pics[info["id"]] = pictures[old_id]
    return out, pics


def report_1000(quick: bool, folder: Path, n_cases: int = 1000) -> Figure:
    from harness.report import html, results_json
    from harness.report.merge import SIDECAR
    from harness.report.write import write_all

    source = folder / "report-source"
    paths = QUICK_SUBSET if quick else SUBSET
    engines = ["oracle"] if quick else ["oracle", "keras", "torch"]
    cmd = [PY, "-m", "harness", "report", *paths, "--shard", "1/1", "--out", str(source),
           *[a for e in engines for a in ("--engine", e)]]
    made = run(cmd)
    if not (source / "results.json").exists():
        return Figure("e", f"report of {n_cases} cases", None, "< 15", False,
                      f"the source report failed: {failed([made])}", [command_text(cmd)])
    doc = results_json.load(source / "results.json")
    pictures = json.loads((source / SIDECAR).read_text(encoding="utf-8"))["pictures"]
    big, pics = multiply(doc, pictures, n_cases)
    out = folder / "report-1000"
    start = time.perf_counter()
    write_all({out / "results.json": results_json.dumps(big), out / "index.html": html.render(big, pics)})
    seconds = time.perf_counter() - start
    page_mb = (out / "index.html").stat().st_size / 1e6
    json_mb = (out / "results.json").stat().st_size / 1e6
    met = bool(check(seconds, "< 15")) and page_mb < 10
    text = (f"{len(big['cases'])} cases x {len(doc['engines'])} engines ({len(doc['cases'])} real cases of "
            f"{' '.join(paths)} repeated, with their pictures): results.json + index.html rendered and written in "
            f"{seconds:.2f} s; page {page_mb:.1f} MB (goal < 10 MB), results.json {json_mb:.1f} MB; the source "
            f"report ({len(doc['cases'])} cases run in {'+'.join(engines)}) took {made.wall_s:.1f} s")
    return Figure("e", f"report of {n_cases} cases (render + write)", seconds, "< 15", met, text,
                  [command_text(cmd), (f"then in-process: results_json.dumps + html.render + write_all of that "
                                       f"document repeated to {n_cases} cases (tools/bench_report.py report_1000)")],
                  {"page_mb": page_mb, "json_mb": json_mb, "source_s": made.wall_s})
