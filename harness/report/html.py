"""reports/index.html: one self-contained page (inline CSS/JS, data embedded as JSON, no network)."""
from __future__ import annotations

import json
from html import escape
from typing import Any

from markupsafe import Markup  # jinja2's own dependency

from .assets import SCRIPT_PARTS, static_text, template
from .coverage_html import coverage_html
from .environment import one_line
from .models_html import models_html
from .models_html import unexpected as models_unexpected
from .page_data import items, page_data
from .results_json import finite, unexpected


def embed(value: Any) -> str:
    """JSON that is safe inside <script>: no '<', '>' or '&' can end the element or start a comment."""
    text = json.dumps(finite(value), separators=(",", ":"), allow_nan=False, default=str)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def _env_diff(old: dict[str, Any] | None, new: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    if not old:
        return []
    keys = [("python",), ("numpy",), ("tensorflow", "version"), ("tensorflow", "onednn_enabled"),
            ("keras", "version"), ("keras", "backend"), ("torch", "version"), ("cpu",)]
    out = []
    for path in keys:
        a: Any = old
        b: Any = new
        for k in path:
            a = a.get(k) if isinstance(a, dict) else None
            b = b.get(k) if isinstance(b, dict) else None
        if a != b:
            out.append((".".join(path), a, b))
    return out


def _summary_html(doc: dict[str, Any]) -> str:
    summary, engines = doc["summary"], doc["engines"]
    models = doc.get("models") or []
    bad_models = models_unexpected(models)
    bad = sum(unexpected(summary[e]) for e in engines) + bad_models
    known = sum(summary[e].get("xfail", 0) for e in engines)
    xpass = sum(summary[e].get("xpass", 0) for e in engines)
    total = sum(summary[e]["total"] for e in engines)
    invalid = doc.get("invalid_cases") or []
    known_text = f"; {known} fail as known bugs (xfail)" if known else ""
    # With backward items a case has two items per engine: the counts are of (case, engine, check) items.
    backward = any((summary[e].get("backward") or {}).get("total") for e in engines)
    unit = "(case, engine, check) items" if backward else "(case, engine) pairs"
    of_models = (f"{bad_models} of {len(models)} model entries fail or error" if bad_models
                 else f"all {len(models)} model entries pass") if models else ""
    if bad or invalid:
        banner = (f'<div class="banner bad" id="verdict-banner" data-bad="{bad}">{bad - bad_models} of {total} '
                  f'{unit} fail or error' + (f" ({xpass} of them known bugs that no longer fail)" if xpass else "")
                  + (f", {len(invalid)} invalid case(s)" if invalid else "") + known_text
                  + (f"; {of_models}" if of_models else "") + '</div>')
    else:
        passed = sum(summary[e]["pass"] for e in engines)
        other = sum(summary[e]["skip"] + summary[e]["rejected"] for e in engines)
        banner = (f'<div class="banner good" id="verdict-banner" data-bad="0">No unexpected failure: of {total} '
                  f'{unit} {passed} pass, {other} skip or are rejected by the framework with the '
                  f'reason{known_text}' + (f"; {of_models}" if of_models else "") + '</div>')
    cols = ("pass", "fail", "xfail", "skip", "rejected", "error") + (("xpass",) if xpass else ())
    head = "".join(f'<th class="num"><span class="pill v-{c}">{c}</span></th>' for c in cols)
    rows = []

    def row(attrs: str, title: str, s: dict[str, Any]) -> str:
        cells = "".join(f'<td class="num{" count0" if not s.get(c) else ""}" data-verdict="{c}">{s.get(c, 0)}</td>'
                        for c in cols)
        worst = s.get("max_ratio_pass")
        return (f'<tr {attrs}><th>{title}</th>{cells}<td class="num">{s["total"]}</td>'
                f'<td class="num">{"" if worst is None else f"{float(worst):.3g}"}</td></tr>')

    for e in engines:
        rows.append(row(f'data-engine="{escape(e)}"', escape(e), summary[e]))
        sub = summary[e].get("backward")
        if sub and sub.get("total"):   # its backward items, counted within the engine's row above
            rows.append(row(f'data-engine="{escape(e)}" data-check="backward" class="sub"',
                            '<span class="small">of them backward</span>', sub))
    table = (f'<table id="summary-table"><tr><th>engine</th>{head}<th class="num">total</th>'
             f'<th class="num" title="largest error/bound among passing cases">worst pass err/bound</th></tr>'
             + "".join(rows) + "</table>")
    parts = [banner, f'<div class="summary-grid">{table}<div>']
    if invalid:
        listed = "".join(f"<li><code>{escape(str(i.get('file')))}::{escape(str(i.get('case') or ''))}</code> "
                        f"{escape(str(i.get('field') or ''))}: {escape(str(i.get('message')))}</li>" for i in invalid)
        parts.append(f'<div class="msg fail"><b>Invalid cases (not run)</b><ul>{listed}</ul></div>')
    base = doc.get("baseline")
    if base:
        ch = base["changed"]
        diff = _env_diff(base.get("environment"), doc["environment"])
        env_items = "".join(f"<li>{escape(k)}: {escape(str(a))} &rarr; {escape(str(b))}</li>" for k, a, b in diff)
        gone = base.get("gone") or []
        gone_items = "".join(
            f"<li><code>{escape(str(g['case_id']))}</code> [{escape(str(g['engine']))}"
            f"{'' if (g.get('check') or 'forward') == 'forward' else ' ' + escape(str(g['check']))}] was "
            f"{escape(str(g['verdict']))}</li>" for g in gone[:500])
        parts.append(
            f'<div class="msg" id="baseline-summary"><b>Against the baseline</b> <code>{escape(base["path"])}</code> '
            f'({escape(str(base.get("created")))}): <b>{ch["verdict"]}</b> verdict changes, <b>{ch["ratio"]}</b> '
            f'error-ratio changes, {ch["new"]} new pairs, {len(gone)} pairs gone (in the baseline, not in this run)'
            + (f', {base["not_compared"]} baseline pairs of other files or engines not compared'
               if base.get("not_compared") else "") + '. '
            f'<span class="small">Rule: {escape(base["rule"])}.</span>'
            + (f'<details><summary>gone pairs</summary><ul>{gone_items}</ul></details>' if gone else "")
            + (f"<div>Environment changes:<ul>{env_items}</ul></div>" if env_items else "")
            + "</div>")
    parts.append("</div></div>")
    if models:
        parts.append(models_html(models))
    return "".join(parts)


def _env_html(doc: dict[str, Any]) -> str:
    env = doc["environment"]
    rows = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            rows.append(f"<tr><th>{escape(prefix)}</th><td class='mono'>{escape(json.dumps(finite(value)))}</td></tr>")

    walk("", env)
    return (f'<div class="envline" id="env-line">{escape(one_line(env))}</div>'
            f'<details><summary>all environment fields</summary><table>{"".join(rows)}</table></details>')


def render(doc: dict[str, Any], pictures: dict[str, dict[str, Any]]) -> str:
    """index.html as one string: templates/report.html.j2 with static/ and the data inlined."""
    data, lazy = page_data(doc, pictures)
    # The template autoescapes text; Markup passes unchanged what must reach the page as is: inline code, HTML built
    # (and escaped) above, and the JSON blocks, which embed() already made safe inside <script>.
    return template("report.html.j2").render(
        schema_version=doc["schema_version"], created=str(doc.get("created")),
        command=" ".join(doc.get("command") or []), n_cases=len(doc["cases"]), engines=doc["engines"],
        duration_s=doc["duration_s"], tolerance=doc["tolerance"]["model"], baseline=bool(doc.get("baseline")),
        layers=sorted({c["layer"] for c in doc["cases"]}), items=items(doc),
        summary_html=Markup(_summary_html(doc)), env_html=Markup(_env_html(doc)),
        coverage_html=Markup(coverage_html(doc.get("coverage"))),
        css=Markup(static_text("report.css")), guard=Markup(static_text("guard.js")),
        scripts=[Markup(static_text(name)) for name in SCRIPT_PARTS],
        data_json=Markup(embed(data)), lazy_json=[Markup(embed(item)) for item in lazy])
