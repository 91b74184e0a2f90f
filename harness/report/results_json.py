"""reports/results.json: the versioned, documented (docs/results-json.md) machine-readable results."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from ..cases.schema import Case
from ..cases.stacks import StackCase
from ..engines import REFERENCE
from ..judge.runner import VERDICTS, Result, outcome
from ..reference.agreement import SAFETY

# MAJOR.MINOR: a reader of major M reads every M.x file; MINOR grows when fields are only added.
SCHEMA_VERSION = "1.6"
TOLERANCE_MODEL = (
    "An engine agrees with the float64 NumPy oracle when every output element satisfies "
    "|y_engine - y_oracle| <= c * ((gamma_K(u_e) + gamma_K(u_64)) * G + a * (u_e + u_64) * |y_oracle| "
    "+ (L (1 + gamma_K(u_e)) H + r) (eta_e + eta_64)), "
    "with gamma_K(u) = K u / (1 - K u), K the element's reduction length, u_e the unit roundoff of the case dtype, "
    "G the same layer on |x|, |w|, |b|, a the ulps of the activation, and c = 1 (Higham's rigorous bound); "
    "the last term is underflow: eta is half the dtype's subnormal spacing (float16 2^-25), H the roundings that may "
    "each add one (harness.reference.oracle.underflow_count), L the activation's slope, "
    "r = 1 where its evaluation rounds. "
    "The ratio error/bound is the share of that error budget used: at most 1 passes, and a wrong port (a flipped "
    "kernel, a shifted padding, a swapped channel) exceeds it by orders of magnitude. "
    "A backward item judges each gradient tensor T (dx, each kernel, dbias) the same way, element by element: "
    "|g_engine - g_oracle| <= (gamma_{K_T}(u_e) + gamma_{K_T}(u_64)) * G_T + (1 + gamma_{K_T}(u_e) + "
    "gamma_{K_T}(u_64)) A_T + an underflow term, with G_T the same backward on "
    "|x|, |w|, |dy|, |f'|, K_T the roundings on the longest path of one of its terms (the product dy * f' "
    "included), and A_T the allowance for the activation's derivative, which the engine takes at its own "
    "pre-activation (0 for a linear layer; harness/judge/gradients.py)."
)


def finite(value: Any) -> Any:
    """JSON has no inf/NaN: they are written as the strings "Infinity", "-Infinity", "NaN"."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {str(k): finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def number(value: Any) -> float | None:
    """Read back a number written by ``finite`` (None stays None)."""
    if value is None:
        return None
    return float(value)


def case_info(case: Case) -> dict[str, Any]:
    return {
        "id": case.id, "file": case.file, "line": case.line, "layer": case.layer,
        "input_shape": list(case.input_shape), "dtype": case.dtype, "seed": case.seed,
        "config": case.config, "swept": case.swept, "source": case.source,
        "description": case.source.get("description"),
    }


def item_key(engine: str, check: str) -> str:
    """What identifies an item within its case: the engine for a forward item, "ENGINE:CHECK" otherwise (an engine
    name has no ':', harness.engines); the page and the heatmap data key items by it."""
    return engine if check == "forward" else f"{engine}:{check}"


def record_key(rec: dict[str, Any]) -> tuple[Any, Any, str]:
    """(case_id, engine, check) of a record; a record without "check" (schema 1.3 and older) is a forward one."""
    return rec.get("case_id"), rec.get("engine"), rec.get("check") or "forward"


def deciding_tensor(case: Case | StackCase, result: Result) -> str | None:
    """The gradient tensor a backward result's ``metrics`` describe (Result.tensor: the one that decided a fail,
    else the one that used most of its budget); None for a forward result or where none was judged."""
    if result.check != "backward":
        return None
    return result.tensor or None


def _metrics(m: Any, n_elements: int, shape: tuple[int, ...] | None = None) -> dict[str, Any]:
    out = m.as_dict()
    out["n_elements"] = int(n_elements)
    if shape is not None:
        out["shape"] = [int(s) for s in shape]
    return out


def record(case: Case | StackCase, result: Result, extra: dict[str, Any] | None) -> dict[str, Any]:
    """One (case, engine, check) item; ``extra`` is the histogram, worst elements and error pattern (or None): of the
    output for a forward item, of the deciding tensor (``tensor``) for a backward one."""
    m = result.metrics
    metrics = gradients = tensor = None
    if result.check == "backward":
        # per gradient tensor judged, in the order judged; the engine's arrays are the oracle's shape once measured
        shapes = {name: tuple(np.shape(arrays[0])) for name, arrays in result.gradient_arrays.items()}
        gradients = {name: _metrics(gm, math.prod(shapes.get(name, ())), shapes.get(name))
                     for name, gm in result.gradient_metrics.items()}
        tensor = deciding_tensor(case, result)
        if m is not None:
            metrics = _metrics(m, gradients[tensor]["n_elements"] if tensor in gradients else 0)
    elif m is not None:
        metrics = _metrics(m, math.prod(result.output_shape or ()))
    extra = extra or {}
    return {
        "case_id": case.id, "file": case.file, "engine": result.engine, "check": result.check,
        "verdict": result.verdict,
        "message": result.message, "repro": result.repro, "layer": case.layer, "dtype": case.dtype, "seed": case.seed,
        "input_shape": list(case.input_shape),
        "output_shape": list(result.output_shape) if result.output_shape is not None else None,
        "output_dtype": result.dtype, "params": result.params,
        "weight_shapes": ({k: list(v) for k, v in result.weight_shapes.items()}
                          if result.weight_shapes is not None else None),
        "notes": list(result.notes), "duration_s": round(result.duration_s, 6), "metrics": metrics,
        "tensor": tensor, "gradients": gradients,   # (1.4) backward items only, else null
        "worst_elements": extra.get("worst_elements"), "ratio_histogram": extra.get("ratio_histogram"),
        "pattern": extra.get("pattern"), "details": result.details or None,
        "xfail": getattr(result, "xfail", "") or None, "baseline": None,
        "facts": finite(dict(result.facts)) or None,
        # The one outcome policy (runner.outcome), so that no reader re-derives xfail/xpass from verdict + xfail.
        "outcome": outcome(result.verdict, getattr(result, "xfail", "") or None),
        # (1.5) what decided a fail, skip or refusal, and the diagnosis's findings (the message renders them)
        "decided_by": result.decided_by or None,
        "findings": [f.to_json() for f in result.findings],
    }


def unexpected(summary_of_engine: dict[str, Any]) -> int:
    """Pairs that make the run fail: fails other than known bugs, errors, and known bugs that no longer fail."""
    s = summary_of_engine   # its "fail" counts every fail verdict, the expected ones (xfail) included
    return s["fail"] - s["xfail"] + s["error"] + s["xpass"]


def _counts(mine: list[dict[str, Any]]) -> dict[str, Any]:
    counts: dict[str, Any] = {v: sum(1 for r in mine if r["verdict"] == v) for v in VERDICTS}
    # Known bugs (the case's xfail where it holds): counted apart by the shared outcome policy, within fail
    # (an expected xfail) and pass (an xpass: the bug is gone, strict as in pytest).
    statuses = [outcome(r["verdict"], r.get("xfail")) for r in mine]
    counts["xfail"], counts["xpass"] = statuses.count("xfail"), statuses.count("xpass")
    passing = [r["metrics"]["max_ratio"] for r in mine if r["verdict"] == "pass" and r["metrics"]]
    return {**counts, "total": len(mine), "max_ratio_pass": max(passing) if passing else None}


def summary(records: list[dict[str, Any]], engines: list[str]) -> dict[str, dict[str, Any]]:
    """Per engine: the counts of all its items, forward and backward together, and (1.4) under "backward" the same
    counts of its backward items alone."""
    out: dict[str, dict[str, Any]] = {}
    for engine in engines:
        mine = [r for r in records if r["engine"] == engine]
        out[engine] = {**_counts(mine),
                       "backward": _counts([r for r in mine if (r.get("check") or "forward") == "backward"])}
    return out


def document(*, cases: list[dict[str, Any]], records: list[dict[str, Any]], engines: list[str],
             invalid: list[dict[str, Any]], environment: dict[str, Any], created: str, paths: list[str],
             command: list[str], duration_s: float, baseline: dict[str, Any] | None,
             coverage: dict[str, Any] | None = None, models: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "generator": "conv-equivalence-harness report",
        "created": created,
        "command": command,
        "paths": paths,
        "engines": engines,
        "reference": REFERENCE,
        "duration_s": round(duration_s, 3),
        "environment": environment,
        "tolerance": {"safety_constant": SAFETY, "model": TOLERANCE_MODEL},
        "summary": summary(records, engines),
        "invalid_cases": invalid,
        "cases": cases,
        "results": records,
        "baseline": baseline,
        "coverage": coverage,  # since 1.1: harness.audit.coverage.coverage_table of this run's cases
        "models": models or [],  # since 1.6: the `models:` entries, harness.frontends.report_models.record each
    }


def dumps(doc: dict[str, Any]) -> str:
    """Standard JSON; each element of cases/results/invalid_cases on a line of its own (grep- and diff-friendly)."""
    def compact(value: Any) -> str:
        return json.dumps(value, separators=(",", ":"), allow_nan=False, default=str)

    doc = finite(doc)
    parts = []
    for key, value in doc.items():
        if key in ("cases", "results", "invalid_cases") and isinstance(value, list) and value:
            body = ",\n".join("  " + compact(item) for item in value)
            parts.append(f" {json.dumps(key)}: [\n{body}\n ]")
        else:
            pretty = json.dumps(value, indent=1, allow_nan=False, default=str).replace("\n", "\n ")
            parts.append(f" {json.dumps(key)}: {pretty}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def load(path: str | Path) -> dict[str, Any]:
    """A results file of a compatible schema version, or ValueError saying what is wrong with it."""
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read results file {path}: {exc}") from exc
    version = doc.get("schema_version") if isinstance(doc, dict) else None
    if not isinstance(version, str) or version.split(".")[0] != SCHEMA_VERSION.split(".")[0]:
        raise ValueError(f"{path}: schema_version={version!r}, but should be {SCHEMA_VERSION.split('.')[0]}.x "
                         "(a results.json written by `python -m harness report`)")
    if not isinstance(doc.get("results"), list):
        raise ValueError(f"{path}: no 'results' list")
    return doc
