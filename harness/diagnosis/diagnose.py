"""Name the likely cause of a disagreement as findings (harness.judge.findings): which known mistake (the mutant
catalogue) reproduces the output, else what the output's shape, dtype, precision or values show. Diagnoser is
what the entry points pass to harness.judge.runner.run_one."""
from __future__ import annotations

import math

import numpy as np

from ..cases.schema import Case
from ..engines import engine_class, is_reference
from ..engines.base import EngineOutput
from ..judge.findings import Finding
from ..judge.forward import Reference
from ..judge.gradients import BackwardReference
from ..known import facts
from ..known.registry import matching_bug
from ..layers.geometry import Geometry
from ..mutation.mutants import MUTANTS
from ..reference import oracle
from ..reference.agreement import Bound, error_bound, ratios
from . import causes
from .gradients import explain_gradients

# Diagnosis recomputes the layer once per mutant; beyond this many elements it is not attempted.
MAX_ELEMENTS = 1_000_000


class Diagnoser:
    """The mutant catalogue's diagnosis (harness.judge.runner.Diagnoser): a wrong output, wrong gradients, an error."""

    def forward(self, case: Case, engine: str, out: EngineOutput, ref: Reference, bound: Bound | None
                ) -> list[Finding]:
        return explain(case, engine, out, ref, bound)

    def gradients(self, case: Case, engine: str, out: EngineOutput, bref: BackwardReference, tensor: str
                  ) -> list[Finding]:
        return explain_gradients(case, engine, out, bref, tensor)

    def error(self, case: Case, engine: str, exc: BaseException) -> list[Finding]:
        return explain_error(case, engine, exc)


def _diagnosis_k(g: Geometry) -> int:
    """A reduction length long enough for any mutant's path (a depthwise run as a full conv sums taps*C)."""
    taps = math.prod(g.kernel_size)
    cm = g.in_channels * g.depth_multiplier
    return taps * cm + cm + g.in_channels + 1


def _within(y: np.ndarray, y_ref: np.ndarray, gauge: np.ndarray, k: int, dtype: str, activation: str) -> float:
    """Largest error/bound of y against y_ref (inf where shapes differ)."""
    if y.shape != y_ref.shape:
        return math.inf
    b = error_bound(k, dtype, gauge, y_ref, activation)
    r = ratios(y, y_ref, b.bound)
    return float(r.max()) if r.size else 0.0


def matching_mutants(case: Case, y: np.ndarray, x64: np.ndarray, w64: dict[str, np.ndarray],
                     gauge: np.ndarray, y_oracle: np.ndarray, k: int, stage: bool = False) -> list[str]:
    """Names of the mutants whose output (or depthwise stage, with ``stage``) reproduces ``y`` within the bound,
    the closest first.

    A mutant that the case cannot tell from the oracle (its output within the oracle's own bound, ``k`` terms)
    is no explanation of a disagreement and is left out.
    """
    g = case.geometry
    act = "linear" if stage else g.activation
    abs_x, abs_w = np.abs(x64), {name: np.abs(v) for name, v in w64.items()}
    found = []
    for name, m in MUTANTS.items():
        if not m.applies(case.layer, case.dtype):
            continue
        try:
            ym, zm = m.stages(case.layer, case.config, x64, w64, case.dtype)
            target = zm if stage else ym
            if target is None or target.shape != y.shape:
                continue
            if target.shape == y_oracle.shape and _within(target, y_oracle, gauge, k, case.dtype, act) <= 1.0:
                continue   # this mistake makes no visible difference here
            # The mutant's own magnitudes: its mistake may move large terms onto an element.
            magnitudes = m.stages(case.layer, {**case.config, "activation": None}, abs_x, abs_w, case.dtype)
            at = magnitudes[1] if stage else magnitudes[0]
            assert at is not None   # the stage target has: the same mutant, the same stage
            gm = np.abs(at)
            gm = np.maximum(gm, gauge) if gm.shape == gauge.shape else gm
            dtype = getattr(m, "diagnosis_dtype", None) or case.dtype
            ratio = _within(y, target, gm, _diagnosis_k(g), dtype, act)
            if ratio <= 1.0:
                found.append((ratio, name))
        except NotImplementedError:
            continue
    return [name for _, name in sorted(found)]   # the closest reproduction first


def _phrase(names: list[str]) -> str:
    said = [f"{MUTANTS[n].diagnosis} [mutant {n}]" for n in names[:3]]
    return said[0] + (f" (or {'; or '.join(said[1:])})" if len(said) > 1 else "")


def _channel_axis(g: Geometry) -> int:
    return 1 if g.channels_first else -1


def _permutation(y: np.ndarray, y_o: np.ndarray, bound: np.ndarray, g: Geometry) -> list[int] | None:
    """p with y[..., j] == y_o[..., p[j]] within the bound for every channel j, if one exists (not identity)."""
    a = np.moveaxis(np.asarray(y, dtype=np.float64), _channel_axis(g), -1)
    o = np.moveaxis(y_o, _channel_axis(g), -1)
    b = np.moveaxis(bound, _channel_axis(g), -1)
    f = a.shape[-1]
    if f < 2 or f > 64 or a.size * f > 4_000_000:
        return None
    a2, o2, b2 = a.reshape(-1, f), o.reshape(-1, f), b.reshape(-1, f)
    ok = np.all(np.abs(a2[:, :, None] - o2[:, None, :]) <= b2[:, None, :], axis=0)   # ok[j, i]
    perm = [int(np.flatnonzero(ok[j])[0]) if ok[j].any() else -1 for j in range(f)]
    if -1 in perm or perm == list(range(f)) or len(set(perm)) != f:
        return None
    return perm


def _channel_offset(y: np.ndarray, y_o: np.ndarray, bound: np.ndarray, g: Geometry) -> bool:
    """True where the difference is one constant per output channel (and not zero): a bias mistake."""
    if g.activation != "linear":
        return False
    d = np.moveaxis(np.asarray(y, dtype=np.float64) - y_o, _channel_axis(g), -1)
    b = np.moveaxis(bound, _channel_axis(g), -1)
    d2, b2 = d.reshape(-1, d.shape[-1]), b.reshape(-1, b.shape[-1])
    if d2.shape[0] < 2:
        return False
    centre = np.median(d2, axis=0)
    return bool(np.all(np.abs(d2 - centre) <= 2 * b2))


def stage_verdicts(case: Case, out: EngineOutput, x64: np.ndarray, w64: dict[str, np.ndarray]) -> list[Finding]:
    """For a layer with stages (separable: depthwise, then pointwise) whose engine exposes them: which stage
    went wrong, a stage finding per stage (id STAGE-agrees, STAGE-disagrees, or STAGE-disagrees:MUTANT)."""
    g = case.geometry
    family = g.kind.family
    found = []
    for stage, after in family.stages.items():
        z_e = out.intermediate.get(stage) if out.intermediate else None
        if z_e is not None:
            found.append(_stage_verdict(case, out, stage, after, np.asarray(z_e, dtype=np.float64), x64, w64))
    return found


def _stage_verdict(case: Case, out: EngineOutput, stage: str, after: str, z_e: np.ndarray, x64: np.ndarray,
                   w64: dict[str, np.ndarray]) -> Finding:
    g = case.geometry
    family = g.kind.family
    cl = oracle.to_channels_last(x64, g.channels_first)
    z_o = family.stage_forward(stage, cl, w64, g)
    gz = family.stage_forward(stage, np.abs(cl), {k: np.abs(v) for k, v in w64.items()}, g)
    k = family.stage_reduction_length(stage, g)
    b_d = out.intermediate.get(f"{stage}_bias")
    if b_d is not None:   # an engine whose stage carries its own bias (the hand-written torch block)
        z_o, gz, k = z_o + b_d, gz + np.abs(b_d), k + 1
    z_o, gz = oracle.from_channels_last(z_o, g.channels_first), oracle.from_channels_last(gz, g.channels_first)
    r = _within(z_e, z_o, gz, k, case.dtype, "linear")
    if r <= 1.0:
        return Finding("stage", f"{stage}-agrees", f"the {stage} stage agrees with the oracle (max error/bound "
                       f"{r:.2g}): {after}, the bias or the activation went wrong", {"stage": stage, "max_ratio": r})
    what = f"shape {z_e.shape} instead of {z_o.shape}" if z_e.shape != z_o.shape else f"max error/bound {r:.3g}"
    text = f"the {stage} stage already disagrees ({what})"
    names = matching_mutants(case, z_e, x64, w64, gz, z_o, k, stage=True) if b_d is None else []
    if names:
        text += ", and it matches the oracle's with " + _phrase(names)
    return Finding("stage", f"{stage}-disagrees" + (f":{names[0]}" if names else ""), text,
                   {"stage": stage, "max_ratio": r, "mutants": names})


def explain(case: Case, engine: str, out: EngineOutput, ref: Reference, bound: Bound | None = None
            ) -> list[Finding]:
    """The likely cause of ``engine``'s disagreement with the oracle, as findings, the closest first ([] when
    none is known).

    ``ref`` is the runner's Reference (inputs, oracle output, gauge); ``bound`` the runner's bound for this
    engine, when it got that far (a shape or dtype failure comes before it). Never raises: a diagnosis must not
    cost the verdict it explains.
    """
    if is_reference(engine):
        return []
    try:
        return _findings(case, engine, out, ref, bound)
    except Exception as exc:  # noqa: BLE001 - diagnosis is a hint; the verdict stands without it
        return [Finding("diagnosis_failed", type(exc).__name__, f"(diagnosis failed: {type(exc).__name__}: {exc})")]


def _findings(case: Case, engine: str, out: EngineOutput, ref: Reference, bound: Bound | None) -> list[Finding]:
    """What explain says, finding by finding: the closest first (a known mistake that reproduces the values
    beats a description of the shape)."""
    y = np.asarray(out.y, dtype=np.float64)
    shape = [] if y.shape == ref.y.shape else causes.shape_diagnosis(case, tuple(y.shape), tuple(ref.y.shape))
    if max(y.size, ref.y.size) > MAX_ELEMENTS:
        return shape
    x64, w64 = ref.inputs.x64, ref.inputs.weights64
    # Whole (a lazy gauge too): the output is at most MAX_ELEMENTS here, and every pattern reads all of it.
    gauge = np.asarray(ref.gauge) if out.gauge_extra is None else np.asarray(ref.gauge) + out.gauge_extra
    g = case.geometry
    k = bound.k if bound is not None else g.reduction_length() + out.extra_roundings
    changed, agrees = causes.dtype_changed(case, np.asarray(out.y), ref.y, gauge, k)
    if changed is not None and agrees:
        # Right values in the wrong type: nothing else to explain but the registered bug that says so, if any (the
        # engine's own, or one it inherits: onnx2tf-legacy's float16 built in float32 is onnx2tf's).
        return [*(f for f in _known_bug(case, engine, out, []) if f.kind in ("known_bug", "inherited")), changed]
    dtype = [changed] if changed is not None else []
    # The failing check comes first: a wrong shape is judged before the dtype, the dtype before the values.
    parts = [] if shape else list(dtype)
    names = matching_mutants(case, y, x64, w64, gauge, ref.y, k)
    if names:
        parts.append(Finding("mutant", names[0], "matches the oracle with " + _phrase(names), {"mutants": names}))
    parts += shape + (dtype if shape else [])
    if not names and not shape:
        if bound is None:
            bound = error_bound(k, case.dtype, gauge, ref.y, g.activation)
        parts += _value_patterns(case, y, ref, bound, gauge, k)
    known = _known_bug(case, engine, out, names)
    # An engine's own registered bug is the closest explanation (the registry's sentence, its repro): first.
    parts = known + parts if known and known[0].kind == "known_bug" else parts + known
    parts += stage_verdicts(case, out, x64, w64)
    return parts


def _value_patterns(case: Case, y: np.ndarray, ref: Reference, bound: Bound, gauge: np.ndarray, k: int
                    ) -> list[Finding]:
    """Patterns of wrong values no mutant reproduces: permuted channels; an output made of the numbers of a
    narrower precision (before the offset: on constant data its rounding is one constant per channel, as in
    Conv2D rgb-ones, 40448 in bfloat16 for 40404); a per-channel offset; inputs rounded to a narrower precision
    (last: its bound is the loosest)."""
    g = case.geometry
    x64, w64 = ref.inputs.x64, ref.inputs.weights64
    whole = np.asarray(bound.bound)   # at most MAX_ELEMENTS (see _findings)
    perm = _permutation(y, ref.y, whole, g)
    if perm is not None:
        moved = [f"{j}<-{p}" for j, p in enumerate(perm) if j != p]
        return [Finding("pattern", "permuted-channels", "the output channels are permuted (engine channel <- oracle "
                        "channel: " + ", ".join(moved[:8]) + (", ..." if len(moved) > 8 else "") + ")",
                        {"permutation": perm})]
    computed = causes.computed_in(case, y, x64, w64, gauge, k)
    if computed is not None:
        return [computed]
    if _channel_offset(y, ref.y, whole, g):
        return [Finding("pattern", "channel-offset", "off by a constant per output channel: a bias mistake "
                        "(dropped, doubled, reordered, or a depthwise bias not folded into the pointwise bias)")]
    rounded = (causes.inputs_rounded(case, y, x64, w64, gauge, ref.y, k)
               or causes.ops_computed_in(case, y, x64, w64, gauge, ref.y, k))
    return [rounded] if rounded is not None else []


def _known_bug(case: Case, engine: str, out: EngineOutput, names: list[str]) -> list[Finding]:
    """The registered bug that explains the output here (its condition holds on this run's facts, the case
    triggers it, its mutant named first): the engine's own (a known_bug finding, so that a scoreboard names the
    registry entry and not only the symptom, on cases that do not pin it), or, for an engine built from another's
    graph (Engine.inherits), that engine's (an inherited finding); id: the registry id."""
    seen = {**facts.process_facts(), "dtype": case.dtype, "layer": case.layer, **out.facts}
    bug = matching_bug(engine, case, seen, names[0] if names else None)
    if bug is None:
        return []
    if bug.engine == engine:
        return [Finding("known_bug", bug.id, f"{engine}'s known bug {bug.id} (harness/known: its condition holds "
                        "here and the case triggers it)")]
    # A framework's bug carried through a converter of its graph is not the converter's; a converter's bug is its
    # variant's too (onnx2tf-legacy inherits onnx2tf's: the same converter fed another export).
    framework = engine_class(bug.engine).isolation is None   # keras, torch: in this process, no converter
    why = ("carried through the conversion; not a bug of the converter" if framework else
           f"{engine} is {bug.engine} fed otherwise: the same converter's bug")
    return [Finding("inherited", bug.id, f"inherited from {bug.engine}: {bug.id} ({bug.engine}'s known bug, {why})",
                    {"engine": bug.engine})]


def explain_error(case: Case, engine: str, exc: BaseException) -> list[Finding]:
    """A short cause for an engine's exception (an invalid exported graph, a missing kernel, a crash): an
    error_cause finding, or []."""
    found = causes.error_cause(exc)
    return [found] if found is not None else []
