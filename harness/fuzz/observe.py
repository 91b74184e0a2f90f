"""What an engine computed on one configuration, encoded to cross processes and compared within the bound."""
from __future__ import annotations

import base64
import hashlib
import zlib
from typing import Any

import numpy as np

from ..judge.runner import Result


def observe(result: Result) -> dict[str, Any]:
    """What one engine did on one configuration: verdict, what decided it (the check, the findings' keys, an
    error's type and words), output (float64) and its digest, the worst element and the oracle there, and the
    per-element bound it was judged with (this process only)."""
    y = None
    if result.output is not None:
        # backward: the gradient tensor the verdict is about (result.tensor), where its metrics point
        value = result.output.y if result.check == "forward" else (result.output.gradients or {}).get(result.tensor)
        try:
            y = None if value is None else np.asarray(value).astype(np.float64)
        except (TypeError, ValueError):
            y = None
    m = result.metrics
    about = [result.decided_by, *(f.key for f in result.findings), result.error_type, result.reason]
    return {"verdict": result.verdict, "about": about, "y": y, "digest": _digest(y),
            "worst": list(m.worst_index) if m else None, "oracle": m.worst_oracle if m else None,
            "bound": result.bound.bound if result.bound is not None else None}


def _digest(y: np.ndarray | None) -> str:
    if y is None:
        return "-"
    return hashlib.sha256(repr(y.shape).encode() + np.ascontiguousarray(y).tobytes()).hexdigest()[:10]


def encode(obs: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in obs.items() if k not in ("y", "bound")}
    y = obs["y"]
    out["y"] = None if y is None else {"shape": list(y.shape), "data": base64.b64encode(
        zlib.compress(np.ascontiguousarray(y).tobytes())).decode("ascii")}
    return out


def decode(obs: dict[str, Any]) -> dict[str, Any]:
    y = obs.get("y")
    if y is not None:
        y = np.frombuffer(zlib.decompress(base64.b64decode(y["data"])), dtype=np.float64).reshape(y["shape"])
    return {**obs, "y": y, "bound": None}


def differs(a: dict[str, Any], b: dict[str, Any], bound: np.ndarray | None) -> bool:
    """Whether two observations of one engine on one configuration differ: another verdict, or (not passing)
    another shape, value, or (without an output) another check, finding or error; values count as different only
    beyond the error bound, so that a summation order that changed with the thread count is not taken for
    nondeterminism. Two passes never differ."""
    if a["verdict"] != b["verdict"]:
        return True
    if a["verdict"] == "pass":
        return False
    ya, yb = a["y"], b["y"]
    if ya is None or yb is None:
        return ya is not yb or list(a["about"]) != list(b["about"])
    if ya.shape != yb.shape:
        return True
    same = (ya == yb) | (np.isnan(ya) & np.isnan(yb))
    if same.all():
        return False
    if bound is None or bound.shape != ya.shape:
        return True
    with np.errstate(invalid="ignore"):
        return bool(np.any(~same & ~(np.abs(ya - yb) <= bound)))
