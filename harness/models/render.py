"""A model diff rendered at the edge: the terminal's lines and the model page."""
from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

from ..reference.agreement import format_ratio
from .diff import DiffResult, LayerDiff


def _r(v: float | None) -> str:
    return "-" if v is None else format_ratio(v)


def render_text(result: DiffResult, model: str, port: str) -> str:
    """The mapping and verdicts, one line per failing layer with its cause and fix, then the summary."""
    mapped = [d for d in result.layers if d.modules]
    lines = [(f"diff {model} against {port}: {len(result.layers)} Keras layers, {len(mapped)} mapped to torch "
             f"modules, {len(result.torch_unmapped)} torch calls unmapped")]
    for d in result.layers:
        lines.append("  " + _row(d))
    for path, kind, why in result.torch_unmapped:
        lines.append(f"  (torch) {path} [{kind}]: {why}")
    failed = result.failed
    for d in failed:
        head = "FAIL" + (" (culprit)" if d.name == result.culprit else "")
        line = f"{head} {d.name} [{d.kind} -> {', '.join(d.modules) or 'unmapped'}]: {d.cause}"
        if d.fix:
            verdict = ("passes" if d.fixed is not None and d.fixed <= 1.0 else "still fails")
            line += f"; fix: {d.fix} -> with it the layer {verdict} (error/bound {_r(d.fixed)})"
        lines.append(line)
    worst = max((d.isolated for d in mapped if d.isolated is not None), default=None)
    lines.append(f"{'FAIL' if failed else 'PASS'}: {len(failed)} of {len(mapped)} mapped layers fail; largest "
                 f"isolated error/bound {_r(worst)}; the port's output differs from Keras's by "
                 f"{result.output_drift:.3g} of its scale")
    return "\n".join(lines)


def _row(d: LayerDiff) -> str:
    target = ", ".join(d.modules) if d.modules else "-"
    extra = f"  {d.note}" if d.note else ""
    return (f"{d.verdict:8s} {d.name} [{d.kind}] -> {target}  isolated {_r(d.isolated)}  keras {_r(d.keras)}  "
            f"drift {'-' if d.drift is None else f'{d.drift:.2g}'}{extra}")


def render_html(result: DiffResult, model: str, port: str, repros: Mapping[str, Sequence[str]] | None = None) -> str:
    """The model page: layers in order with their module, verdict, ratios (isolated, Keras), the stream's drift;
    the culprit highlighted; each failing layer's cause and fix, and its repro files where ``repros`` (Keras layer
    name -> links relative to the page) has them."""
    rows = []
    for d in result.layers:
        cls = "culprit" if d.name == result.culprit else d.verdict
        cause = html.escape(d.cause or d.note)
        if d.fix:
            cause += f"<br><b>fix</b>: <code>{html.escape(d.fix)}</code> (error/bound with it: {_r(d.fixed)})"
        links = (repros or {}).get(d.name, [])
        if links:
            cause += "<br><b>repro</b>: " + ", ".join(
                f"<a href='{html.escape(link, quote=True)}'>{html.escape(link.rsplit('/', 1)[-1])}</a>"
                for link in links)
        rows.append(f"<tr class='{cls}'><td>{html.escape(d.name)}</td><td>{html.escape(d.kind)}</td>"
                    f"<td>{html.escape(', '.join(d.modules) or '-')}</td><td>{d.verdict}</td>"
                    f"<td>{_r(d.isolated)}</td><td>{_r(d.keras)}</td>"
                    f"<td>{'-' if d.drift is None else f'{d.drift:.2g}'}</td><td>{cause}</td></tr>")
    unmapped = "".join(f"<li><code>{html.escape(p)}</code> ({html.escape(k)}): {html.escape(w)}</li>"
                       for p, k, w in result.torch_unmapped)
    verdict = "PASS" if result.passed else f"FAIL: first divergence at {html.escape(result.culprit or '')}"
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>diff {html.escape(model)}</title>
<style>body{{font-family:sans-serif;margin:1.5em}}td,th{{padding:2px 8px;border-bottom:1px solid #ddd;
text-align:left;font-size:13px}}tr.fail{{background:#fde0dc}}tr.culprit{{background:#f8b4a8;font-weight:bold}}
tr.unjudged{{color:#777}}</style></head><body>
<h1>{html.escape(model)} against {html.escape(port)}</h1><p><b>{verdict}</b>; the port's output differs from
Keras's by {result.output_drift:.3g} of its scale. Isolated: the port's module fed the Keras layer's input, error
/ bound against the float64 oracle; keras: Keras's own output, likewise; drift: the port's stream against Keras's
at this point, relative to its largest value.</p>
<table><tr><th>Keras layer</th><th>kind</th><th>torch module</th><th>verdict</th><th>isolated</th><th>keras</th>
<th>drift</th><th>cause</th></tr>{''.join(rows)}</table>
<h2>Torch calls no Keras layer maps to</h2><ul>{unmapped or '<li>none</li>'}</ul></body></html>
"""
