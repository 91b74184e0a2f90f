"""scoreboard.html: the scoreboard as one self-contained page in the report's style (report.css inlined)."""
from __future__ import annotations

from typing import Any

from markupsafe import Markup  # jinja2's own dependency

from ..report.assets import static_text, template
from .board import shares
from .merge import merge_cells

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


JUDGED = ("pass", "fail", "xfail", "xpass", "error")   # the outcomes with a verdict on values (a share's denominator)
FOLD_CHARS = 80   # an engine's runtime-limit text longer than this is folded behind its first line


def matrix_cell(cells: list[dict[str, Any]]) -> dict[str, Any]:
    """One engine x layer kind cell of the matrix: its dtype cells merged (counts added, causes merged by name,
    most frequent first, each with its first example), the share passed of the items judged, and the hue."""
    merged = merge_cells(cells)
    judged = sum(merged[s] for s in JUDGED)
    share = merged["pass"] / judged if judged else None
    return {**merged, "judged": judged, "share": share,
            "tone": share_tone(share, {s: merged[s] for s in SHOWN})}


def share_tone(share: float | None, counts: dict[str, int]) -> str:
    """A matrix cell's background: green at all passed, through amber, to red at none; grey where nothing was
    judged (only skips and refusals) and white where the engine ran no item of the kind."""
    if share is None:
        return "#f0f1f3" if any(counts.values()) else "#ffffff"
    return f"hsl({round(120 * share)}, 55%, {round(88 - 6 * (1 - share))}%)"


def matrix(doc: dict[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
    """(layer kinds in column order, a row per engine: {engine, cells: [matrix_cell per kind]}): the page's lead."""
    kinds = list(dict.fromkeys(c["layer"] for c in doc["columns"] if c["kind"] == "layer-dtype"))
    rows = []
    for engine in doc["engines"]:
        cells = doc["cells"][engine["name"]]
        rows.append({"engine": engine, "cells": [
            matrix_cell([cell for column, cell in cells.items()
                         if any(c["id"] == column and c.get("layer") == kind for c in doc["columns"])])
            for kind in kinds]})
    return kinds, rows


def folded(text: str) -> tuple[str, str]:
    """(what shows, what folds behind it): a long text shows its first sentence."""
    if len(text) <= FOLD_CHARS:
        return text, ""
    cut = text.find(". ", 0, FOLD_CHARS)
    cut = cut + 1 if cut > 0 else text.rfind(" ", 0, FOLD_CHARS)
    return text[:cut] + " ...", text


def render(doc: dict[str, Any]) -> str:
    """The page as one string (templates/scoreboard.html.j2 of the report package, its stylesheet inlined)."""
    rows = [{"engine": e, "cells": [(c, doc["cells"][e["name"]][c["id"]], tone(doc["cells"][e["name"]][c["id"]]))
                                    for c in doc["columns"]],
             "limits": [(dtype, *folded(why)) for dtype, why in e["dtype_limits"].items()],
             "timing": timing_text(e.get("timing"))}
            for e in doc["engines"]]
    kinds, lead = matrix(doc)
    return template("scoreboard.html.j2").render(
        doc=doc, rows=rows, groups=groups(doc["columns"]), shown=SHOWN, command=" ".join(doc["command"]),
        kinds=kinds, lead=lead, overall=overall(doc), css=Markup(static_text("report.css")))


def timing_text(timing: dict[str, Any] | None, before: str = "") -> str:
    """'0.021 s median, 2.9 s slowest; harness 7% of 812 s' of an engine row's timing (Board.timing): the harness's
    share of the engine's total is what its own calls (framework, converter, runtime) leave; '' where it has none (a
    board written before timings, or an engine that ran nothing). A merged board has no median: its slowest."""
    if not timing or not timing.get("items"):
        return ""
    parts = []
    if timing.get("median_s") is not None:
        parts.append(f"{timing['median_s']:.3g} s median, {timing['max_s']:.3g} s slowest")
    elif timing.get("max_s") is not None:
        parts.append(f"{timing['max_s']:.3g} s slowest")
    if timing.get("harness_share") is not None:
        parts.append(f"harness {timing['harness_share']:.0%} of {timing['total_s']:.0f} s")
    return before + "; ".join(parts) if parts else ""


def overall(doc: dict[str, Any]) -> str:
    """'harness 5.5% of 726 s (the rest inside the engines' own calls)' over every engine of the board; '' for a
    board without third-party seconds (written before them)."""
    timings = [e.get("timing") or {} for e in doc["engines"]]
    if not timings or any("third_party_s" not in t for t in timings):
        return ""
    total = sum(t.get("total_s", 0.0) for t in timings)
    share = shares(total, sum(t["third_party_s"] for t in timings))["harness_share"]
    return "" if share is None else (f"harness {share:.1%} of {total:.0f} s (the rest inside the engines' own "
                                     "framework, converter and runtime calls)")


def markdown(doc: dict[str, Any], causes: int = 3) -> str:
    """scoreboard.md: the scoreboard as Markdown for a README (engines with versions and totals, their most
    frequent causes, and per layer kind the items passed of those judged)."""
    time = overall(doc)
    lines = [(f"Scoreboard of `{' '.join(doc['command'])}` ({doc['created']}; {doc['cases']['shipped']} shipped "
              f"cases and {doc['cases']['fuzz']} fuzzed configurations per engine{'; ' + time if time else ''}):"), "",
             ("| engine | versions | pass | fail | known bug | error | skip | rejected | most frequent causes | "
              "s per item (median, slowest); harness share of the engine's total |"),
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in doc["engines"]:
        t = row["totals"]
        top = "; ".join(f"{c['count']} {c['cause']}" for c in t["causes"][:causes]) or "-"
        lines.append(f"| {row['name']} | {row['versions'] or '-'} | {t['pass']} | {t['fail']} | {t['xfail']} | "
                     f"{t['error']} | {t['skip']} | {t['rejected']} | {top} | "
                     f"{timing_text(row.get('timing')) or '-'} |")
    kinds = list(dict.fromkeys(c["layer"] for c in doc["columns"] if c["kind"] == "layer-dtype"))
    lines += ["", ("Per layer kind (all dtypes): items passed / items judged (pass + fail + known bug + error; "
                   "skips and refusals apart)."), "",
              "| engine | " + " | ".join(kinds) + " |", "|---|" + "---|" * len(kinds)]
    for row in doc["engines"]:
        cells = doc["cells"][row["name"]]
        out = []
        for kind in kinds:
            mine = [cell for c, cell in cells.items() if c.startswith(kind + " ")]
            judged = sum(cell["pass"] + cell["fail"] + cell["xfail"] + cell["xpass"] + cell["error"] for cell in mine)
            out.append(f"{sum(cell['pass'] for cell in mine)}/{judged}" if judged else "-")
        lines.append(f"| {row['name']} | " + " | ".join(out) + " |")
    missing = doc.get("not_installed") or []
    if missing:
        lines += ["", "Not installed: " + "; ".join(f"{m['engine']} ({m['reason']})" for m in missing) + "."]
    return "\n".join(lines) + "\n"
