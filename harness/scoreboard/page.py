"""scoreboard.html: the scoreboard as one self-contained page in the report's style (report.css inlined)."""
from __future__ import annotations

from typing import Any

from markupsafe import Markup  # jinja2's own dependency

from ..report.assets import static_text, template

SHOWN = ("pass", "fail", "xfail", "error", "skip", "rejected", "xpass")


def tone(cell: dict[str, Any]) -> str:
    """A cell's colour: the worst outcome in it (an unexpected failure first, then a known bug, then skips)."""
    if not cell["total"]:
        return "empty"
    for status, name in (("fail", "fail"), ("error", "error"), ("xpass", "fail"), ("xfail", "xfail")):
        if cell[status]:
            return name
    return "pass" if cell["pass"] else "skip"


def groups(columns: list[dict[str, Any]]) -> list[tuple[str, int]]:
    """The header's first row: (layer kind or 'notable arguments', how many columns it spans)."""
    out: list[tuple[str, int]] = []
    for column in columns:
        name = column["layer"] if column["kind"] == "layer-dtype" else "notable arguments"
        if out and out[-1][0] == name:
            out[-1] = (name, out[-1][1] + 1)
        else:
            out.append((name, 1))
    return out


def render(doc: dict[str, Any]) -> str:
    """The page as one string (templates/scoreboard.html.j2 of the report package, its stylesheet inlined)."""
    rows = [{"engine": e, "cells": [(c, doc["cells"][e["name"]][c["id"]], tone(doc["cells"][e["name"]][c["id"]]))
                                    for c in doc["columns"]]}
            for e in doc["engines"]]
    return template("scoreboard.html.j2").render(
        doc=doc, rows=rows, groups=groups(doc["columns"]), shown=SHOWN, command=" ".join(doc["command"]),
        css=Markup(static_text("report.css")))
