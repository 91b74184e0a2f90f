"""A fixed fuzz budget for the scoreboard: configurations drawn by the fuzzer's strategy, written as a case file."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..fuzz.configs import to_yaml

FILE_NAME = "scoreboard-fuzz.yaml"


def draw(examples: int) -> list[dict[str, Any]]:
    """``examples`` distinct configurations from harness.fuzz.strategies.entries, the same ones on every run
    (derandomized: a scoreboard is compared with the last one)."""
    from hypothesis import HealthCheck, Phase, Verbosity, given, settings

    from ..fuzz.strategies import entries  # loads hypothesis: only when a scoreboard draws its fuzz cases

    drawn: dict[str, dict[str, Any]] = {}

    # Generation only: nothing fails, so hypothesis neither shrinks nor replays; duplicates are dropped.
    @settings(max_examples=examples, deadline=None, database=None, derandomize=True, phases=(Phase.generate,),
              suppress_health_check=list(HealthCheck), verbosity=Verbosity.quiet)
    @given(entry=entries())
    def collect(entry: dict[str, Any]) -> None:
        drawn.setdefault(json.dumps(entry, sort_keys=True), entry)

    if examples > 0:
        collect()
    return list(drawn.values())[:examples]


def write(entries: list[dict[str, Any]], folder: Path) -> Path:
    """The entries as a case file (ids fuzz-0, fuzz-1, ...) under ``folder``: the cells' repro commands name it."""
    path = folder / FILE_NAME
    folder.mkdir(parents=True, exist_ok=True)
    body = "\n".join(to_yaml(entry, f"fuzz-{i}") for i, entry in enumerate(entries))
    path.write_text("# Drawn by `python -m harness scoreboard --fuzz N` (harness.fuzz.strategies.entries, "
                    "derandomized).\ncases:\n" + body + "\n", encoding="utf-8")
    return path
