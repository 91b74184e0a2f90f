"""One case entry -> its cases: defaults merged, keys checked, the sweep expanded, each point validated."""
from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

from ..errors import CaseError
from .model import Case
from .validate import validate_case

CASE_KEYS = {
    "id": "unique name, part of the pytest id",
    "layer": "Keras class name",
    "input_shape": "batch first, in the case's data_format",
    "config": "Keras constructor arguments",
    "dtype": "float16 | bfloat16 | float32 | float64",
    "seed": "random seed of the generated tensors",
    "input": "tensor spec of the input",
    "weights": "tensor spec per Keras weight name",
    "expect": "facts checked in every engine",
    "sweep": "cartesian product over config keys (and input_shape, dtype, seed)",
    "engine_options": "per engine name, options of that engine (e.g. torch: {depthwise_bias: true})",
    "skip": "per engine name, the reason that engine is skipped for this case",
    "xfail": "per engine name, a known bug of that engine (a registry id, or a reason with an optional condition): "
             "where it holds the item must fail (strict)",
    "description": "free text",
    "check": "what is judged: [forward] (the default), [backward] (the gradients) or [forward, backward]",
    "grad_output": "tensor spec of the upstream gradient dL/dy of the backward check (default: seeded normal)",
}
SWEEP_TOP_LEVEL = {"input_shape", "dtype", "seed"}
ID_PATTERN = re.compile(r"^[A-Za-z0-9_.+-]+$")


def strip_lines(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: strip_lines(v) for k, v in value.items() if k != "__line__"}
    if isinstance(value, list):
        return [strip_lines(v) for v in value]
    return value


def case_from_entry(file: str, entry: Any, defaults: dict | None = None) -> list[Case]:
    """The cases of one case entry (a mapping as written under ``cases:``; one per point of its sweep), validated
    as if read from ``file`` with that file's ``defaults``. An invalid entry raises CaseError naming its id."""
    label = str(entry["id"]) if isinstance(entry, dict) and "id" in entry else "#1"   # as load_file names it
    return expand(file, label, defaults or {}, entry, Path(file).absolute().parent)


def merge_defaults(defaults: dict, entry: dict) -> dict:
    merged = dict(defaults)
    for key, value in entry.items():
        if key in ("config", "weights", "engine_options", "skip", "xfail") and isinstance(value, dict) \
                and isinstance(defaults.get(key), dict):
            merged[key] = {**defaults[key], **value}
        else:
            merged[key] = value
    return merged


def expand(path: str, label: str, defaults: dict, entry: Any, base: Path | None = None) -> list[Case]:
    """The cases of one entry; ``base`` is the case file's folder, which `file` tensor specs are relative to."""
    def fail(fieldname: str | None, message: str) -> CaseError:
        return CaseError(path, label, fieldname, message)

    if not isinstance(entry, dict):
        raise fail(None, f"a case is a mapping, got {type(entry).__name__}")
    line = entry.get("__line__")
    raw = merge_defaults(strip_lines(defaults), strip_lines(entry))
    unknown = set(raw) - set(CASE_KEYS)
    if unknown:
        raise fail(", ".join(sorted(unknown)), "unknown key; allowed: " + ", ".join(sorted(CASE_KEYS)))
    for required in ("id", "layer", "input_shape", "config"):
        if required not in raw:
            raise fail(required, "missing required key")
    if not isinstance(raw["id"], str) or not ID_PATTERN.match(raw["id"]):
        raise fail("id", f"must be a string of letters, digits and _.+- ; got {raw['id']!r}")
    sweep = raw.get("sweep") or {}
    if not isinstance(sweep, dict):
        raise fail("sweep", "must be a mapping of key -> list of values")
    for key, values in sweep.items():
        if not isinstance(values, list) or not values:
            raise fail(f"sweep.{key}", "must be a non-empty list of values")
    out = []
    for point in itertools.product(*sweep.values()) if sweep else [()]:
        swept = dict(zip(sweep, point))
        data = {k: v for k, v in raw.items() if k != "sweep"}
        data["config"] = dict(data["config"]) if isinstance(data["config"], dict) else data["config"]
        for key, value in swept.items():
            if key in SWEEP_TOP_LEVEL:
                data[key] = value
            elif isinstance(data["config"], dict):
                data["config"][key] = value
        suffix = ",".join(f"{k}={_short(v)}" for k, v in swept.items())
        case_id = f"{raw['id']}({suffix})" if suffix else raw["id"]
        case = validate_case(path, case_id, data, swept, base)
        case.source, case.line = strip_lines(entry), line
        out.append(case)
    for key, table in (("xfail", out[0].xfail), ("expect.rejected_by", out[0].rejected_by)):
        for engine, expectation in table.items():
            # A known behaviour holds only at the points of a sweep it touches; at none, the reference is dead.
            known = expectation.entry
            if known is not None and not any(known.applies(case) for case in out):
                raise fail(f"{key}.{engine}", f"{known.id} touches no configuration of this case "
                                              f"(it touches: {known.touches})")
    return out


def _short(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "x".join(str(v) for v in value)
    return str(value)
