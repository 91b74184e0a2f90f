"""The page's data is results.json cut to what the page reads: maps only for fails and passes near their bound,
histograms without their edges, records without the fields the scripts never read; results.json stays whole."""
from __future__ import annotations

import re
from importlib import resources

import numpy as np
import pytest

from harness.report import page_data, pictures


def test_maps_for_fails_and_near_bound_passes_only():
    assert pictures.budget_for(True, 0.01) is pictures.FAILING, "a fail (or known bug) is drawn in full"
    assert pictures.budget_for(False, pictures.NEAR_BOUND) is pictures.PASSING, "a pass at the threshold is drawn"
    assert pictures.budget_for(False, pictures.NEAR_BOUND * 0.99) is None, "a pass under the threshold is not"
    assert pictures.budget_for(False, None) is None


def test_a_pass_without_maps_keeps_what_results_json_reads():
    rng = np.random.default_rng(0)
    y_o = rng.standard_normal((2, 5, 6, 3))
    y = (y_o * (1 + 1e-9)).astype(np.float64)
    extra, pics = pictures.engine_pictures(y, y_o, np.ones_like(y_o), False, None)
    assert pics is None, "no maps without a budget"
    h = extra["ratio_histogram"]
    assert sum(h["counts"]) + h["zero"] + h["below"] + h["above"] + h["nonfinite"] == y.size, "every element counted"
    assert len(extra["worst_elements"]) == pictures.TOP_ELEMENTS and extra["pattern"]["n_over"] == 0


@pytest.mark.parametrize("counts", [[0] * 28, [0, 0, 3, 0, 5] + [0] * 23, [1] + [0] * 26 + [2]])
def test_compact_histogram_keeps_every_count(counts):
    h = {"log10_edges": pictures.HIST_LOG10_EDGES, "counts": counts, "zero": 4, "below": 0, "above": 1,
         "nonfinite": 0}
    c = page_data.compact_histogram(h)
    assert "log10_edges" not in c and ("below" not in c) and c["zero"] == 4 and c["above"] == 1, f"compact={c}"
    full = [0] * (len(pictures.HIST_LOG10_EDGES) - 1)   # as case.js histOf expands it
    for j, n in enumerate(c["counts"]):
        full[c["from"] + j] = n
    assert full == counts, f"expanded counts={full}, but should be {counts}"
    other = dict(h, log10_edges=[0.0, 1.0], counts=[7])
    assert page_data.compact_histogram(other) == other, "another edge set is kept whole"


def test_slim_record_drops_empties_and_shortens_floats_but_the_deciding_ratio():
    rec = {"verdict": "pass", "outcome": "pass", "message": "", "notes": [], "xfail": None, "engine": "keras",
           "findings": [], "repro": "python -m harness run x.yaml", "worst_elements": [{"ratio": 0.1}],
           "duration_s": 0.0123456,
           "metrics": {"max_ratio": 0.123456789012, "max_abs": 1.23456789012e-7, "worst_value": 1.2345678901234,
                       "worst_bound": 3.0, "worst_index": [0, 1], "n_over": 0},
           "layer_ratios": [0.111111111111]}
    slim = page_data.slim_record(rec)
    assert set(slim) == {"verdict", "metrics", "layer_ratios", "duration_s"}, \
        f"slim fields={sorted(slim)}: the outcome equal to the verdict, empties and unread fields should be out"
    m = dict(zip(page_data.METRIC_KEYS, slim["metrics"]))   # as report.js metricsOf reads the row back
    assert m["max_ratio"] == rec["metrics"]["max_ratio"], "the ratio that decides is kept exactly"
    assert (m["max_abs"], m["worst_value"], slim["layer_ratios"], slim["duration_s"]) == \
        (1.23457e-7, 1.23456789, [0.111111], 0.0123), f"metrics={m}"
    assert m["worst_index"] == [0, 1] and m["n_over"] == 0 and m["max_rel"] is None and "worst_bound" not in m
    assert len(slim["metrics"]) == page_data.METRIC_KEYS.index("worst_value") + 1, "trailing empty columns are left out"
    known = page_data.slim_record({**rec, "verdict": "fail", "outcome": "xfail"})
    assert known["outcome"] == "xfail", "an outcome other than the verdict (a known bug) is kept"


def test_the_scripts_read_only_the_record_fields_the_page_keeps():
    static = resources.files("harness.report") / "static"
    text = "".join((static / name).read_text(encoding="utf-8") for name in ("report.js", "case.js"))
    # `r.FIELD`, `pick(e).FIELD`, `c.r[KEY].FIELD`: a record's fields as the scripts read them
    read = set(re.findall(r"\b(?:r|pick\(e\)|c\.r\[[^\]]+\])\.([a-z_]+)", text))
    missing = read - set(page_data.RECORD_FIELDS)
    assert read and not missing, f"the scripts read record fields {sorted(missing)} that page_data drops"
    metrics = set(re.findall(r"\bm\.([a-z_]+)", text))
    assert metrics and not metrics - set(page_data.METRIC_KEYS), \
        f"the scripts read metrics {sorted(metrics - set(page_data.METRIC_KEYS))} that page_data drops"
