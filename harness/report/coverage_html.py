"""The report's coverage section: per layer kind, the parameter values the run's cases exercise and what is missing."""
from __future__ import annotations

from html import escape
from typing import Any

# Values beyond this many per parameter go into the cell's title (the suite has dozens of spatial sizes).
MAX_VALUES = 12


def _chip(label: str, count: int, missing: bool) -> str:
    if missing:
        return (f'<span class="cov-chip cov-miss" data-missing="{escape(label)}" title="no case of this run has it">'
                f'{escape(label)} <b>NOT COVERED</b></span>')
    return (f'<span class="cov-chip" data-bucket="{escape(label)}" title="{count} case{"" if count == 1 else "s"}">'
            f'{escape(label)} <i>{count}</i></span>')


def _values(values: dict[str, int]) -> str:
    items = list(values.items())
    shown = ", ".join(f'<span class="mono">{escape(v)}</span>&nbsp;({n})' for v, n in items[:MAX_VALUES])
    if len(items) > MAX_VALUES:
        rest = ", ".join(f"{v} ({n})" for v, n in items[MAX_VALUES:])
        shown += f', <span class="small" title="{escape(rest)}">&hellip; {len(items) - MAX_VALUES} more</span>'
    return shown or '<span class="small">&ndash;</span>'


def _kind(name: str, entry: dict[str, Any]) -> str:
    rows = entry["parameters"]
    n_missing = sum(len(r["missing"]) for r in rows)
    head = (f'<h3>{escape(name)} <span class="small">{entry["cases"]} case{"" if entry["cases"] == 1 else "s"}'
            f' &middot; {n_missing} value class{"" if n_missing == 1 else "es"} not covered</span></h3>')
    if not entry["cases"]:
        return (f'<div class="cov-kind cov-none" data-layer="{escape(name)}" data-missing-count="{n_missing}">{head}'
                f'<p class="small">No case of this layer kind in this run: nothing of it is covered.</p></div>')
    body = []
    for r in rows:
        miss = set(r["missing"])
        chips = " ".join(_chip(b, n, b in miss) for b, n in r["buckets"].items())
        mark = ' class="has-miss"' if miss else ""
        body.append(f'<tr data-parameter="{escape(r["parameter"])}"{mark}>'
                    f'<th>{escape(r["parameter"])}</th><td>{chips}</td><td>{_values(r["values"])}</td></tr>')
    return (f'<div class="cov-kind" data-layer="{escape(name)}" data-missing-count="{n_missing}">{head}'
            f'<table class="cov-table"><tr><th>parameter</th><th>value classes that ports get wrong (cases)</th>'
            f'<th>values exercised (cases)</th></tr>{"".join(body)}</table></div>')


def coverage_html(table: dict[str, dict[str, Any]] | None) -> str:
    """A closed <details> section (opened by #coverage); empty for a results file older than schema 1.1."""
    if not table:
        return ""
    n_cases = sum(e["cases"] for e in table.values())
    n_missing = sum(len(r["missing"]) for e in table.values() for r in e["parameters"])
    kinds = "".join(_kind(name, entry) for name, entry in table.items())
    return (f'<details id="coverage"><summary><h2>Coverage of parameter values</h2> <span class="small">'
            f'{len(table)} layer kinds, {n_cases} cases; <b class="cov-total" data-missing="{n_missing}">'
            f'{n_missing}</b> (layer kind, value class) pairs not covered</span></summary>'
            f'<p class="small">Per layer kind, in the manner of the ONNX backend-test coverage: which values of each '
            f'parameter this run\'s cases exercise (number of cases), and the value classes that ports get wrong '
            f'(even kernels, <code>same</code> with strides, ...), with those that no case has marked '
            f'<span class="cov-chip cov-miss"><b>NOT COVERED</b></span>. '
            f'<code>python -m harness coverage PATHS</code> prints the same table.</p>'
            f'<input type="checkbox" id="cov-missing-only"><label class="small" for="cov-missing-only"> only '
            f'parameters with something not covered</label><div class="cov-grid">{kinds}</div></details>')
