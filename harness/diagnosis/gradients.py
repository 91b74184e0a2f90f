"""Name the likely mistake behind wrong gradients: which backward mutant reproduces the engine's gradients.

Asked by the runner through a Diagnoser (harness.diagnosis.diagnose.Diagnoser.gradients): on a backward fail,
every backward mutant that applies is recomputed for the case, in float64, as the engine's port (with the
engine's port variant, a torch block's depthwise bias), and named where every tensor it returns matches the
engine's within a bound: the engine's rounding errors on the mutant's own computation, (gamma_K(u) +
gamma_K(u_64)) * G_m + A_m, with G_m the mutant's gradients on magnitudes (and at least the oracle's gauge), A_m
the activation's allowance carried through the mutant's backward, and K generous (the longest of the case's
gradient lengths plus the roundings a mutant adds: the fold's F + C*M). A mutant the case cannot tell from the
oracle (its gradients pass the judge) explains nothing and is left out; a mutant of a port variant (the folded
depthwise bias) is tried only on an engine that reports that variant.
"""
from __future__ import annotations

import math

import numpy as np

from .. import engines
from ..cases.schema import Case
from ..engines.base import EngineOutput
from ..judge import gradients as backward
from ..judge.findings import Finding
from ..judge.gradients import BackwardReference
from ..judge.runner import reference
from ..mutation.mutants import BACKWARD_MUTANTS
from ..reference.agreement import gamma, ratios, usable
from ..tensors.values import numpy_dtype, unit_roundoff

# Recomputing the layer's backward once per mutant: beyond this many elements in any tensor it is not attempted.
MAX_ELEMENTS = 1_000_000


def explain_gradients(case: Case, engine: str, out: EngineOutput, bref: BackwardReference, failing: str
                      ) -> list[Finding]:
    """The backward mutants that reproduce ``engine``'s gradients: one gradient_mutant finding (id: the closest
    mutant, the others in its sentence and evidence), or []. Never raises: a diagnosis must not cost the verdict
    it explains."""
    if engines.is_reference(engine):
        return []
    try:
        names = matching_backward_mutants(case, out, bref)
    except Exception as exc:  # noqa: BLE001 - diagnosis is a hint; the verdict stands without it
        return [Finding("diagnosis_failed", type(exc).__name__, f"(diagnosis failed: {type(exc).__name__}: {exc})")]
    return [Finding("gradient_mutant", names[0], phrase(names), {"mutants": names, "tensor": failing})] if names else []


def phrase(names: list[str]) -> str:
    if not names:
        return ""
    said = [f"{BACKWARD_MUTANTS[n].diagnosis} [mutant {n}]" for n in names[:3]]
    return "the gradients match the oracle's with " + said[0] + (
        f" (or {'; or '.join(said[1:])})" if len(said) > 1 else "")


def _too_large(case: Case, out: EngineOutput, bref: BackwardReference) -> bool:
    sizes = [math.prod(case.input_shape), bref.dy.size, *(np.size(v) for v in (out.gradients or {}).values())]
    return max(sizes) > MAX_ELEMENTS


def matching_backward_mutants(case: Case, out: EngineOutput, bref: BackwardReference) -> list[str]:
    """Names of the backward mutants whose gradients reproduce the engine's (every tensor, same names and shapes)
    within the bound, the closest first."""
    got = {k: np.asarray(v, dtype=np.float64) for k, v in (out.gradients or {}).items()}
    if not got or _too_large(case, out, bref):
        return []
    g = case.geometry
    _, ref_gauges, ref_allowance, lengths = bref.expected(g, out)
    # The mutants' own extra roundings: the fold's dot products over the F filters and the C*M channels.
    k = max(lengths.values()) + g.out_channels + g.in_channels * g.depth_multiplier + 2
    u, u64 = unit_roundoff(case.dtype), unit_roundoff("float64")
    if not usable(k, u):
        return []
    scale = gamma(k, u) + gamma(k, u64)
    inputs = reference(case).inputs
    x64, w64, dy64 = inputs.x64, inputs.weights64, bref.dy.astype(np.float64)
    variant = {n: v for n, v in out.intermediate.items() if n in backward.VARIANT_TENSORS}
    e_dz = backward.allowance_dz(case, inputs, dy64)   # the activation's allowance on dz (None: exact)
    found = []
    for name, m in BACKWARD_MUTANTS.items():
        if not m.applies(case.layer, case.dtype) or any(n not in variant for n in m.port_variant):
            continue   # a mutant of a port variant explains only an engine that is that variant
        try:
            grads = m.gradients(g, x64, w64, dy64, case.dtype, variant=variant)
            if set(grads) != set(got) or any(grads[n].shape != got[n].shape for n in grads):
                continue
            if _invisible(case, m, grads, out, bref):
                continue   # this mistake makes no visible difference here
            gauges = m.gradients(g, x64, w64, dy64, case.dtype, variant=variant, magnitudes=True)
            allowance = (m.gradients(g, x64, w64, dy64, case.dtype, variant=variant, magnitudes=True, dz=e_dz)
                         if e_dz is not None else {})
            worst = 0.0
            for n, value in grads.items():
                gauge = _at_least(gauges[n], ref_gauges.get(n))
                extra = _at_least(allowance.get(n, np.zeros_like(value)), ref_allowance.get(n))
                r = ratios(got[n], value, scale * gauge + extra)
                worst = max(worst, float(r.max()) if r.size else 0.0)
                if worst > 1.0:
                    break
            if worst <= 1.0:
                found.append((worst, name))
        except NotImplementedError:
            continue
    return [name for _, name in sorted(found)]


def _at_least(a: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """a, raised to b where b has its shape (the oracle's gauge where the mutant's tensor is laid out alike)."""
    a = np.abs(np.asarray(a, dtype=np.float64))
    return np.maximum(a, b) if b is not None and np.shape(b) == a.shape else a


def _invisible(case: Case, m, grads: dict[str, np.ndarray], out: EngineOutput, bref: BackwardReference) -> bool:
    """Whether the mutant's gradients, as an engine would return them, pass the case's backward judgement."""
    dtype = numpy_dtype(case.dtype)
    as_engine = EngineOutput(y=out.y, gradients={n: v.astype(dtype) for n, v in grads.items()},
                             intermediate=dict(out.intermediate))
    return backward.judge_gradients(case, f"mutant {m.name}", as_engine, bref).verdict == "pass"
