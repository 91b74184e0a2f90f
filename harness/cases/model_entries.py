"""Model entries as written: a case file's `models:` entries (a Keras model and its port, diffed layer by layer)."""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import CaseError
from .schema import ID_PATTERN, entries_of

FILE_KEY = "models"
MODEL_KEYS = {
    "id": "unique name (shared with the cases and stacks), part of the pytest id",
    "keras": "a .keras file (relative to this file) or a keras.applications name",
    "port": "the port: FILE.py:factory (relative to this file) or module:factory (a torch nn.Module), FILE.onnx (run "
            "by onnxruntime, relative to this file) or converter:NAME (tf2onnx, onnx2torch: the harness converts the "
            "Keras model)",
    "torch_weights": "a state dict (.pt, relative to this file) loaded into the port",
    "transfer_weights": "true: copy the Keras weights into the mapped torch modules first",
    "map": "Keras layer name -> torch module path or list of paths, overriding the mapping",
    "input_size": "square image side (applications: default the model's own)",
    "seed": "seed of the applications' weights and of the input",
    "image": "input image .npy (channels last, relative to this file)",
    "batch": "batch size of the seeded input",
    "torch_layout": "channels_first | channels_last: the layout the port takes (default: channels_first for a torch "
                    "port, the graph's own for an ONNX one)",
    "description": "free text",
}
REQUIRED = ("id", "keras", "port")
_APPLICATION = re.compile(r"^[a-z0-9_]+$")


@dataclass
class ModelEntry:
    """One `models:` entry validated: everything `python -m harness diff` takes, paths resolved."""

    id: str
    file: str                       # the case file, as shown
    keras: str                      # a .keras path (absolute) or an applications name
    port: str                       # FILE.py:factory (absolute file), module:factory, FILE.onnx or converter:NAME
    torch_weights: str | None = None
    transfer_weights: bool = False
    overrides: dict[str, list[str]] = field(default_factory=dict)
    input_size: int | None = None
    seed: int = 0
    image: str | None = None
    batch: int = 1
    torch_layout: str | None = None  # None: channels_first for a torch port, the graph's own for an ONNX one
    line: int | None = None


def models_of(doc: dict[str, Any], path: str | Path, shown: str) -> tuple[list[ModelEntry], list[CaseError]]:
    """Every valid model entry of a case file's document, and one error per invalid entry."""
    folder = Path(path).resolve().parent
    return entries_of(doc, FILE_KEY, shown, "model entries",
                      lambda entry, label: model_from_entry(shown, folder, entry, label))


def model_from_entry(shown: str, folder: Path, entry: Any, label: str) -> ModelEntry:
    def fail(name: str | None, message: str) -> CaseError:
        return CaseError(shown, label, name, message)

    if not isinstance(entry, dict):
        raise fail(None, f"a model entry is a mapping, got {type(entry).__name__}")
    line = entry.get("__line__")
    entry = {k: v for k, v in entry.items() if k != "__line__"}
    for key in entry:
        if key not in MODEL_KEYS:
            close = difflib.get_close_matches(str(key), list(MODEL_KEYS), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; allowed: {', '.join(sorted(MODEL_KEYS))}"
            raise fail(str(key), f"unknown key{hint}")
    for key in REQUIRED:
        if key not in entry:
            raise fail(key, "required")
    if not isinstance(entry["id"], str) or not re.fullmatch(ID_PATTERN, entry["id"]):
        raise fail("id", f"must be a string of letters, digits and _.+-, got {entry['id']!r}")
    keras = _string(entry, "keras", fail)
    if not _APPLICATION.match(keras):
        keras = _existing(folder, keras, "keras", fail)
    port = _string(entry, "port", fail)
    if port.lower().endswith(".onnx"):
        port = _existing(folder, port, "port", fail)
    elif not port.startswith("converter:"):   # converter:NAME is checked by the diff (its error is the entry's)
        module, _, factory = port.rpartition(":")
        if not module or not factory:
            raise fail("port", f"must be FILE.py:factory, module:factory, FILE.onnx or converter:NAME, got {port!r}")
        if module.endswith(".py") or "/" in module:
            port = f"{_existing(folder, module, 'port', fail)}:{factory}"
    weights = _existing(folder, _string(entry, "torch_weights", fail), "torch_weights", fail) \
        if "torch_weights" in entry else None
    image = _existing(folder, _string(entry, "image", fail), "image", fail) if "image" in entry else None
    overrides = _map(entry.get("map", {}), fail)
    layout = entry.get("torch_layout")
    if layout not in (None, "channels_first", "channels_last"):
        raise fail("torch_layout", f"must be channels_first or channels_last, got {layout!r}")
    transfer = entry.get("transfer_weights", False)
    if not isinstance(transfer, bool):
        raise fail("transfer_weights", f"must be true or false, got {transfer!r}")
    ints = {}
    for key, low in (("input_size", 1), ("seed", 0), ("batch", 1)):
        if key in entry:
            value = entry[key]
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise fail(key, f"must be an integer >= {low}, got {value!r}")
            ints[key] = value
    return ModelEntry(id=entry["id"], file=shown, keras=keras, port=port, torch_weights=weights,
                      transfer_weights=transfer, overrides=overrides, input_size=ints.get("input_size"),
                      seed=ints.get("seed", 0), image=image, batch=ints.get("batch", 1), torch_layout=layout,
                      line=line if isinstance(line, int) else None)


def _string(entry: dict[str, Any], key: str, fail: Any) -> str:
    value = entry[key]
    if not isinstance(value, str) or not value:
        raise fail(key, f"must be a non-empty string, got {value!r}")
    return value


def _existing(folder: Path, name: str, key: str, fail: Any) -> str:
    path = (folder / name).resolve()
    if not path.is_file():
        raise fail(key, f"no such file: {name} (relative to the case file's folder)")
    return str(path)


def _map(value: Any, fail: Any) -> dict[str, list[str]]:
    if not isinstance(value, dict):
        raise fail("map", f"must be a mapping of Keras layer name to torch module path(s), got {type(value).__name__}")
    out: dict[str, list[str]] = {}
    for key, paths in value.items():
        listed = [paths] if isinstance(paths, str) else paths
        if not isinstance(listed, list) or not listed or not all(isinstance(p, str) for p in listed):
            raise fail(f"map.{key}", "must be a module path or a list of module paths")
        out[str(key)] = listed
    return out
