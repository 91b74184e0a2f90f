"""A report's `models:` entries: each Keras model diffed against its PyTorch port, its results.json record, its model
page and the repros of its failing layers, written under a staging folder that the report moves into place."""
from __future__ import annotations

import shutil
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..cases.model_entries import ModelEntry
from ..models.render import render_html
from .extract import sanitise
from .model_session import diff_model, write_repros  # Keras and torch load only when diff_model runs

MODELS_DIR = "models"   # under the report's --out: ENTRY.html, and ENTRY/LAYER.yaml + LAYER.npz per failing layer


class Staging:
    """Where a run writes its model pages and repros: a hidden folder of --out, made when the first entry needs it
    (a run refused before it starts leaves no trace); ``replace`` makes it --out's models/ once the report's other
    files are written, ``discard`` removes what is left of it."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.path: Path | None = None

    def folder(self) -> Path:
        if self.path is None:
            self.out.mkdir(parents=True, exist_ok=True)
            self.path = Path(tempfile.mkdtemp(dir=self.out, prefix=".models."))
        return self.path

    def replace(self) -> None:
        """models/ of --out becomes this run's, or goes where this run wrote none: a previous run's pages must not
        read as this run's."""
        target = self.out / MODELS_DIR
        if target.exists():
            shutil.rmtree(target)
        if self.path is not None:
            self.path.rename(target)
            self.path = None

    def discard(self) -> None:
        if self.path is not None and self.path.exists():
            shutil.rmtree(self.path)
        self.path = None


def file_name(entry_id: str) -> str:
    """The entry's file and folder name under models/: its id (schema's ID_PATTERN: letters, digits, _.+-), with a
    leading '.' escaped so that no id ('..') names a folder outside."""
    return f"_{entry_id}" if entry_id.startswith(".") else entry_id


def cause_of(diff: dict[str, Any] | None) -> str:
    """The culprit layer's cause line in a DiffResult's JSON ("" where it passed or has no culprit)."""
    if not diff or not diff.get("culprit"):
        return ""
    layer = next((d for d in diff["layers"] if d["name"] == diff["culprit"]), None)
    return (layer or {}).get("cause") or ""


def record(entry: ModelEntry, *, verdict: str, model: str | None = None, diff: dict[str, Any] | None = None,
           message: str = "", details: str | None = None, transferred: int = 0, page: str | None = None,
           repros: list[str] | None = None, duration_s: float = 0.0) -> dict[str, Any]:
    """One entry of results.json's ``models`` (docs/results-json.md): the entry as written, its verdict (pass, fail:
    a mapped layer fails; error: the model or port could not be loaded or diffed, ``message`` says why), the counts
    the page shows, its files (relative to the report's folder) and the diff itself (DiffResult.to_json(), None on
    error)."""
    layers = diff["layers"] if diff else []
    return {
        "id": entry.id, "file": entry.file, "line": entry.line, "keras": entry.keras, "port": entry.port,
        "model": model, "verdict": verdict, "message": message,
        "culprit": diff.get("culprit") if diff else None, "cause": cause_of(diff),
        "layers": len(layers), "mapped": sum(1 for d in layers if d["modules"]),
        "failed": sum(1 for d in layers if d["verdict"] == "fail"), "transferred": transferred,
        "page": page, "repros": repros or [], "duration_s": round(duration_s, 3), "details": details, "diff": diff,
    }


def run_entry(entry: ModelEntry, staging: Staging | None) -> dict[str, Any]:
    """Diff one entry (as `python -m harness diff` does); with ``staging``, write its model page there (ENTRY.html)
    and, where layers fail, their repros (ENTRY/LAYER.yaml, LAYER.npz). An entry that cannot be loaded or diffed is
    an error record, not the end of the report."""
    start = time.perf_counter()
    try:
        diffed = diff_model(entry.keras, entry.port, torch_weights=entry.torch_weights,
                            transfer_weights=entry.transfer_weights, overrides=entry.overrides,
                            input_size=entry.input_size, seed=entry.seed, image=entry.image, batch=entry.batch,
                            torch_layout=entry.torch_layout)
    except Exception as exc:  # noqa: BLE001 - one entry's broken model or port is its error, the report goes on
        return record(entry, verdict="error", message=f"{entry.file}::{entry.id}: {type(exc).__name__}: {exc}",
                      details=traceback.format_exc(), duration_s=time.perf_counter() - start)
    result, name = diffed.result, file_name(entry.id)
    page, repros = None, []
    if staging is not None:
        folder = staging.folder()
        written = write_repros(result, str(folder / name)) if not result.passed else []
        repros = [f"{MODELS_DIR}/{name}/{Path(p).name}" for p in written]
        # Each failing layer's files, linked from its row of the model page (which sits beside the folder).
        by_layer = {d.name: [f"{name}/{Path(p).name}" for p in written if Path(p).stem == sanitise(d.name)]
                    for d in result.failed}
        (folder / f"{name}.html").write_text(render_html(result, diffed.model, entry.port, by_layer),
                                             encoding="utf-8")
        page = f"{MODELS_DIR}/{name}.html"
    diff = result.to_json()
    return record(entry, verdict="pass" if result.passed else "fail", model=diffed.model, diff=diff,
                  transferred=diffed.transferred, page=page, repros=repros, duration_s=time.perf_counter() - start)


def run_entries(entries: list[ModelEntry], staging: Staging | None,
                step: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """The records of every entry, in order (``step``: told each entry's id and verdict as it ends)."""
    out = []
    for entry in entries:
        out.append(run_entry(entry, staging))
        if step:
            step(f"model {entry.id}: {out[-1]['verdict']}")
    return out
