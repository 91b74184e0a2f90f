"""The report page's table of `models:` entries (results.json's ``models``): one row per entry, linked to its page."""
from __future__ import annotations

from html import escape
from pathlib import PurePath
from typing import Any
from urllib.parse import quote


def _short_port(port: str) -> str:
    """FILE.py:factory shown by the file's name (the record keeps the resolved path); module:factory as is."""
    module, _, factory = port.rpartition(":")
    return f"{PurePath(module).name}:{factory}" if module.endswith(".py") else port


def _link(path: str | None, text: str) -> str:
    return f'<a href="{escape(quote(path))}">{escape(text)}</a>' if path else ""


def _row(m: dict[str, Any]) -> str:
    verdict = m["verdict"]
    if verdict == "error":
        why = f'<span class="mono">{escape(m.get("message") or "")}</span>'
    elif verdict == "fail":
        why = (f'{m["failed"]} failing; first <code>{escape(str(m.get("culprit")))}</code>: '
               f'{escape((m.get("cause") or "").replace(chr(10), " "))}')
    else:
        why = ""
    repros = m.get("repros") or []
    files = [_link(m.get("page"), "model page")]
    if repros:
        files.append("repros: " + ", ".join(_link(p, PurePath(p).name) for p in repros))
    model = m.get("model") or PurePath(m["keras"]).name
    return (f'<tr data-model="{escape(m["id"])}" data-verdict="{escape(verdict)}">'
            f'<td class="mono" title="{escape(m["file"])}">{escape(m["id"])}</td><td>{escape(model)}</td>'
            f'<td class="mono" title="{escape(m["port"])}">{escape(_short_port(m["port"]))}</td>'
            f'<td><span class="pill v-{escape(verdict)}">{escape(verdict)}</span></td>'
            f'<td class="num">{m["mapped"]} of {m["layers"]}</td><td>{why}</td>'
            f'<td>{" &middot; ".join(f for f in files if f)}</td></tr>')


def models_html(models: list[dict[str, Any]]) -> str:
    """The summary's table of model entries: id, model, port, verdict, mapped layers, the culprit and its cause
    (or why the entry could not run), links to the model page and the failing layers' repros."""
    rows = "".join(_row(m) for m in models)
    return ('<div id="models-summary"><h3>Models against their PyTorch ports</h3>'
            '<p class="small">Each <code>models:</code> entry: the Keras model diffed layer by layer against its port '
            '(as <code>python -m harness diff</code>); its page lists every layer with its module, verdict and '
            'error/bound.</p><table id="models-table"><tr><th>entry</th><th>model</th><th>port</th><th>verdict</th>'
            '<th class="num" title="Keras layers mapped to torch modules, of all">mapped</th>'
            '<th>culprit and cause</th><th>files</th></tr>' + rows + '</table></div>')


def unexpected(models: list[dict[str, Any]]) -> int:
    """Model entries that make the run fail: every one that does not pass (a fail or an error)."""
    return sum(1 for m in models if m.get("verdict") != "pass")
