"""A drawn entry as a validated Case (the schema's own code) and as a ready-to-paste YAML case."""
from __future__ import annotations

import itertools
import os
from typing import Any

import yaml

from ..cases.schema import Case, case_from_entry

FUZZ_FILE = "fuzz.yaml"   # the file name a generated case carries (it appears in messages as [fuzz.yaml::id])
_ids = itertools.count()


def to_case(entry: dict[str, Any], case_id: str | None = None) -> Case:
    """Validate an entry with the schema code (as if read from YAML) and return its Case."""
    case_id = case_id or f"fuzz-{os.getpid()}-{next(_ids)}"   # unique: the runner caches per (file, id)
    return case_from_entry(FUZZ_FILE, {"id": case_id, **entry})[0]


def to_yaml(entry: dict[str, Any], case_id: str) -> str:
    """A ready-to-paste YAML case (an item of a file's `cases:` list)."""
    def flow(value: Any) -> str:   # one line; safe_dump ends a bare scalar with a "..." document end
        return yaml.safe_dump(value, default_flow_style=True, width=10_000).replace("\n...", "").strip()

    lines = [f"  - id: {case_id}"]
    for key in ("layer", "input_shape", "config", "dtype", "seed", "input"):
        lines.append(f"    {key}: {flow(entry[key])}")
    return "\n".join(lines)
