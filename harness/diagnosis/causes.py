"""Failure classes converters show, each named from the output alone: a shape, a dtype, a precision, an error;
and a failing item's cause as a short, stable label read from its fields (never from its message)."""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ..judge.findings import Finding, first
from ..judge.runner import ENGINE_WORDS
from ..layers.activations import get_activation
from ..layers.geometry import Geometry, spatial_shape
from ..layers.padding import pad_amounts
from ..reference import oracle
from ..reference.agreement import error_bound, ratios
from ..tensors.values import DTYPES, numpy_dtype, round_to, unit_roundoff

if TYPE_CHECKING:
    from ..cases.schema import Case

# Precisions an engine may silently compute a case dtype's layer in, narrowest first: the narrowest one whose
# numbers the output is made of is the one it was computed in (a bfloat16 number is a float16 number too).
NARROWER: dict[str, tuple[str, ...]] = {
    "float64": ("bfloat16", "float16", "float32"),
    "float32": ("bfloat16", "float16"),
    "float16": ("bfloat16",),
    "bfloat16": (),
}
SPATIAL_NAMES = {1: ("steps",), 2: ("height", "width"), 3: ("depth", "height", "width")}


def max_ratio(y: np.ndarray, y_ref: np.ndarray, gauge: np.ndarray, k: int, dtype: str, activation: str) -> float:
    """Largest error/bound of ``y`` against ``y_ref`` in ``dtype`` (inf where shapes differ or nothing is finite)."""
    if y.shape != y_ref.shape:
        return float("inf")
    with np.errstate(all="ignore"):
        r = ratios(y, y_ref, error_bound(k, dtype, gauge, y_ref, activation).bound)
    return float(np.nanmax(r)) if r.size and not np.all(np.isnan(r)) else (0.0 if not r.size else float("inf"))


# ---------------------------------------------------------------- precision

def _representable(y: np.ndarray, dtype: str) -> bool:
    """Every finite element of ``y`` is a number of ``dtype`` (what an output computed in it is made of)."""
    finite = np.isfinite(y)
    with np.errstate(all="ignore"):
        back = round_to(y[finite], dtype).astype(np.float64)
    return bool(finite.any()) and bool(np.all(back == y[finite]))


def _oracle_rounded(case: Case, x64: np.ndarray, w64: dict[str, np.ndarray], dtype: str) -> np.ndarray | None:
    """The oracle's output on inputs and weights rounded to ``dtype`` (None where that overflows)."""
    with np.errstate(all="ignore"):
        x = round_to(x64, dtype).astype(np.float64)
        w = {k: round_to(v, dtype).astype(np.float64) for k, v in w64.items()}
    if not np.all(np.isfinite(x)) or not all(np.all(np.isfinite(v)) for v in w.values()):
        return None
    return oracle.run(case.layer, case.config, x, w)


def _ops_rounded(case: Case, x64: np.ndarray, w64: dict[str, np.ndarray], dtype: str, stages: str,
                 rest: str) -> np.ndarray | None:
    """The layer with its input and kernels rounded to ``dtype``, and the convolutions' outputs too (``stages``:
    "all" of them, "inner" ones only (a separable layer's depthwise stage), or "none"), the bias (rounded to
    ``rest``) and the activation applied after, exactly: what a runtime computes when it runs the convolution ops
    in ``dtype`` and the bias add as an op of its own in ``rest`` (OpenVINO's bfloat16 inference of a Keras 1D
    layer, whose ExpandDims/Squeeze keep the bias add apart; of a float64 layer, everything but the convolutions
    in float32). None where that overflows."""
    g = case.geometry

    def rounding(a: np.ndarray) -> np.ndarray:
        return round_to(a, dtype).astype(np.float64)

    def keep(a: np.ndarray) -> np.ndarray:
        return a
    with np.errstate(all="ignore"):
        x = oracle.to_channels_last(round_to(x64, dtype).astype(np.float64), g.channels_first)
        kernels = {k: round_to(v, dtype).astype(np.float64) for k, v in w64.items() if k != "bias"}
        if not np.all(np.isfinite(x)) or not all(np.all(np.isfinite(v)) for v in kernels.values()):
            return None
        pre = g.kind.family.forward_rounded(x, kernels, g, keep if stages == "none" else rounding,
                                            rounding if stages == "all" else keep)
        if g.use_bias:
            pre = pre + round_to(w64["bias"], rest).astype(np.float64)
    return oracle.from_channels_last(get_activation(g.activation).reference(pre), g.channels_first)


def computed_in(case: Case, y: np.ndarray, x64: np.ndarray, w64: dict[str, np.ndarray], gauge: np.ndarray,
                k: int) -> Finding | None:
    """'computed internally in P: ...' where ``y`` is the layer computed in a precision P narrower than the case's
    dtype, inputs, weights and output rounded to P: every output value a P number, within P's bound of the
    oracle on inputs rounded to P. Not claimed where the exact answer is itself made of P numbers (small integers):
    P arithmetic would have had nothing to round, and a bias mistake would look the same. A precision finding
    (id computed-in-P), None where it does not hold."""
    act = case.geometry.activation
    for p in NARROWER.get(case.dtype, ()):
        y_p = _oracle_rounded(case, x64, w64, p)
        if y_p is None or y_p.shape != y.shape or _representable(y_p, p) or not _representable(y, p):
            continue
        r = max_ratio(y, y_p, gauge, k, p, act)
        if r <= 1.0:
            return Finding("precision", f"computed-in-{p}", (
                f"computed internally in {p}: the output matches the oracle's on inputs and weights rounded to {p}, "
                f"within {p}'s bound (max error/bound {r:.2g}), and every output value is a {p} number"),
                {"precision": p, "max_ratio": r})
    return None


def ops_computed_in(case: Case, y: np.ndarray, x64: np.ndarray, w64: dict[str, np.ndarray], gauge: np.ndarray,
                    y_oracle: np.ndarray, k: int) -> Finding | None:
    """'computed internally in P (...)' where ``y`` is the convolution computed in a narrower P and the bias and
    activation applied in a precision Q between P and the case's dtype D (D itself, or float32 for a float64
    case): either every convolution's output rounded to P (an op computed in P), or only its input and kernels
    rounded to P and the sums accumulated in Q. Judged within Q's bound, and only where the rounding to P makes a
    visible difference. The stored-in-P form is tried first (the narrowest P first): it is the more specific.
    A precision finding (id ops-in-P+Q, inner-ops-in-P+Q or operands-in-P+Q), None where none holds."""
    act = case.geometry.activation
    narrower = NARROWER.get(case.dtype, ())
    # Intermediate stages only where the family has some (a separable layer's depthwise output).
    kinds = ("all", "inner", "none") if case.geometry.kind.family.stages else ("all", "none")
    for stages in kinds:
        for p in narrower if stages != "none" else reversed(narrower):
            for q in (case.dtype, *(n for n in reversed(narrower) if unit_roundoff(n) < unit_roundoff(p))):
                y_p = _ops_rounded(case, x64, w64, p, stages, q)
                if y_p is None or y_p.shape != y.shape or max_ratio(y_p, y_oracle, gauge, k, q, act) <= 1.0:
                    continue
                r = max_ratio(y, y_p, gauge, k, q, act)
                if r > 1.0:
                    continue
                rest = f", bias and activation applied after in {q}" if case.geometry.use_bias else ""
                evidence = {"precision": p, "accumulated_in": q, "rounded": stages, "max_ratio": r}
                if stages == "all":
                    return Finding("precision", f"ops-in-{p}+{q}", (
                        f"computed internally in {p} (every convolution's input, kernel and output rounded to "
                        f"{p}{rest}): the output matches that within {q}'s bound (max error/bound {r:.2g})"), evidence)
                if stages == "inner":
                    return Finding("precision", f"inner-ops-in-{p}+{q}", (
                        f"computed internally in {p} (inputs, kernels and the intermediate stage's output rounded to "
                        f"{p}, the last convolution accumulated in {q}{rest}): the output matches that within {q}'s "
                        f"bound (max error/bound {r:.2g})"), evidence)
                return Finding("precision", f"operands-in-{p}+{q}", (
                    f"computed internally in {p} (inputs and kernels rounded to it, accumulated in {q}{rest}): the "
                    f"output matches that within {q}'s bound (max error/bound {r:.2g})"), evidence)
    return None


def inputs_rounded(case: Case, y: np.ndarray, x64: np.ndarray, w64: dict[str, np.ndarray], gauge: np.ndarray,
                   y_oracle: np.ndarray, k: int) -> Finding | None:
    """'computed internally in P (inputs and weights rounded to it, accumulated in D): ...' where ``y`` is the
    oracle on inputs and weights rounded to a narrower P, within the case dtype D's own bound (and that rounding
    makes a visible difference here): a precision finding (id inputs-rounded-to-P), None where it does not hold."""
    act = case.geometry.activation
    for p in reversed(NARROWER.get(case.dtype, ())):   # the widest first: the least rounding that explains it
        y_p = _oracle_rounded(case, x64, w64, p)
        if y_p is None or y_p.shape != y.shape:
            continue
        if max_ratio(y_p, y_oracle, gauge, k, case.dtype, act) <= 1.0:
            continue   # rounding the inputs to p changes nothing visible here: no explanation
        r = max_ratio(y, y_p, gauge, k, case.dtype, act)
        if r <= 1.0:
            return Finding("precision", f"inputs-rounded-to-{p}", (
                f"computed internally in {p} (inputs and weights rounded to it, accumulated in {case.dtype}): the "
                f"output matches the oracle's on inputs and weights rounded to {p} within {case.dtype}'s bound "
                f"(max error/bound {r:.2g})"), {"precision": p, "accumulated_in": case.dtype, "max_ratio": r})
    return None


# ---------------------------------------------------------------- dtype

def dtype_changed(case: Case, y: np.ndarray, y_oracle: np.ndarray, gauge: np.ndarray, k: int
                  ) -> tuple[Finding | None, bool]:
    """(a dtype finding 'the dtype silently changed to R (the case is D): ...', whether the values agree within
    the narrower dtype's bound); (None, False) where the dtype is the case's. Its id: changed-to-R, with
    -values-wrong where the values disagree even so."""
    got, want = str(y.dtype), str(numpy_dtype(case.dtype))
    if got == want:
        return None, False
    text = f"the dtype silently changed to {got} (the case is {case.dtype})"
    evidence: dict[str, Any] = {"dtype": got, "case_dtype": case.dtype}
    values = np.asarray(y, dtype=np.float64)
    if values.shape != y_oracle.shape:
        return Finding("dtype", f"changed-to-{got}", text, evidence), False
    narrower = got if got in DTYPES and unit_roundoff(got) > unit_roundoff(case.dtype) else case.dtype
    # Two more roundings: inputs and weights cast to the narrower dtype on the way in.
    r = max_ratio(values, y_oracle, gauge, k + 2, narrower, case.geometry.activation)
    evidence.update(agrees=r <= 1.0, max_ratio=r)
    if r <= 1.0:
        how = f"computed in {got}" if narrower == got else f"right to {case.dtype}'s precision, only the type differs"
        return Finding("dtype", f"changed-to-{got}", f"{text}: its values agree with the oracle within {narrower}'s "
                       f"bound (max error/bound {r:.2g}): {how}", evidence), True
    return Finding("dtype", f"changed-to-{got}-values-wrong", f"{text}: its values disagree even within "
                   f"{narrower}'s bound (max error/bound {r:.3g})", evidence), False


# ---------------------------------------------------------------- shape

def axis_names(g: Geometry) -> list[str]:
    spatial = list(SPATIAL_NAMES.get(g.kind.rank, tuple(f"spatial{i}" for i in range(g.kind.rank))))
    return ["batch", "channels", *spatial] if g.channels_first else ["batch", *spatial, "channels"]


def _spatial_axes(g: Geometry) -> list[int]:
    return list(range(2, 2 + g.kind.rank)) if g.channels_first else list(range(1, 1 + g.kind.rank))


def _spatial_as(g: Geometry, input_shape: tuple[int, ...], **changed: Any) -> tuple[int, ...]:
    """The output's spatial lengths had the layer run with ``changed`` arguments (padding, strides, dilation)."""
    return g.replace(**changed).output_spatial(spatial_shape(g, input_shape))   # the family's own lengths


def _shape(id: str, text: str, got: tuple[int, ...], want: tuple[int, ...]) -> Finding:
    return Finding("shape", id, text, {"got": list(got), "want": list(want)})


def shape_diagnosis(case: Case, got: tuple[int, ...], want: tuple[int, ...]) -> list[Finding]:
    """What a wrong output shape says, as shape findings: the pattern (a lost batch axis, another layout, padding
    on the wrong axes, an argument ignored), then which axes differ and by how much (id AXES-differ)."""
    g = case.geometry
    names = axis_names(g)
    if len(got) != len(want):
        if tuple(got) == tuple(want[1:]):
            return [_shape("batch-axis-lost", f"the batch axis was lost: the output has one sample's shape "
                           f"{tuple(got)} instead of {want}", got, want)]
        if tuple(got) == tuple(d for d in want if d != 1):
            return [_shape("size-1-axes-squeezed", f"size-1 axes squeezed out: {tuple(got)} instead of {want}",
                           got, want)]
        return [_shape("rank-differs", f"the output has rank {len(got)} instead of {len(want)}: {tuple(got)} "
                       f"instead of {want}", got, want)]
    parts = _shape_pattern(case, tuple(got), tuple(want))
    differ = [i for i, (a, b) in enumerate(zip(got, want)) if a != b]
    which = " and ".join(names[i] for i in differ) + (" axes differ" if len(differ) > 1 else " axis differs")
    parts.append(_shape("+".join(names[i] for i in differ) + "-differ", f"the {which}: " + ", ".join(
        f"{names[i]} {got[i]} instead of {want[i]} ({got[i] - want[i]:+d})" for i in differ), got, want))
    return parts


def _shape_pattern(case: Case, got: tuple[int, ...], want: tuple[int, ...]) -> list[Finding]:
    g = case.geometry
    names, spatial = axis_names(g), _spatial_axes(g)
    other_layout = (want[0], want[-1], *want[1:-1]) if not g.channels_first else (want[0], *want[2:], want[1])
    if got == other_layout and got != want:
        need = "channels_first" if g.channels_first else "channels_last"
        have = "channels_last" if g.channels_first else "channels_first"
        return [_shape("other-layout", f"the output is {have} where {need} is expected (a transpose missing)",
                       got, want)]
    got_spatial = tuple(got[i] for i in spatial)
    want_spatial = tuple(want[i] for i in spatial)
    non_spatial = [i for i in range(len(want)) if i not in spatial]
    if (sorted(got_spatial) == sorted(want_spatial) and got_spatial != want_spatial
            and all(got[i] == want[i] for i in non_spatial)):
        return [_shape("spatial-axes-swapped", "the spatial axes are in another order ("
                       + " and ".join(names[i] for i in spatial) + " swapped)", got, want)]
    valid = _spatial_as(g, case.input_shape, padding="valid")
    grown = {names[i]: got[i] - want[i] for i in non_spatial if got[i] > want[i]}
    if g.padding != "valid" and got_spatial == valid and valid != want_spatial and grown:
        pads = [pad_amounts(g.padding, n, k, s, d) for n, k, s, d
                in zip(spatial_shape(g, case.input_shape), g.kernel_size, g.strides, g.dilation)]
        totals = sum(b + a for b, a in pads)
        exact = " (the padding total)" if sum(grown.values()) == totals else ""
        return [_shape("padding-on-wrong-axes", f"padding applied on the wrong axes: the spatial axes are as if "
                       f"unpadded ('valid': {', '.join(f'{names[i]} {got[i]}' for i in spatial)}) while "
                       f"{' and '.join(f'{a} grew by {n}' for a, n in grown.items())}{exact}; the {g.padding!r} "
                       f"padding ({', '.join(f'{b}+{a}' for b, a in pads)} per spatial axis) landed on the "
                       "batch/channel axes (a pad vector read in the wrong layout)", got, want)]
    if all(got[i] == want[i] for i in non_spatial):
        for id, what, changed in (
                ("as-padding-valid", "padding 'valid' (the padding dropped)", {"padding": "valid"}),
                ("as-padding-same", "padding 'same'", {"padding": "same"}),
                ("strides-ignored", "stride 1 (the strides ignored)", {"strides": (1,) * g.kind.rank}),
                ("dilation-ignored", "dilation 1 (the dilation ignored)", {"dilation": (1,) * g.kind.rank})):
            if got_spatial == _spatial_as(g, case.input_shape, **changed) != want_spatial:
                return [_shape(id, f"the spatial axes are those of {what}", got, want)]
    if got[0] != want[0] and all(got[i] == want[i] for i in range(1, len(want))):
        return [_shape("batch-differs", f"the batch axis is {got[0]} instead of {want[0]}", got, want)]
    channels = 1 if g.channels_first else len(want) - 1
    if got[channels] == g.in_channels != want[channels] and all(got[i] == want[i] for i in range(len(want))
                                                                 if i != channels):
        return [_shape("input-channels-kept", f"the output has the input's {g.in_channels} channels instead of "
                       f"{want[channels]} (filters or depth_multiplier ignored)", got, want)]
    return []


# ---------------------------------------------------------------- errors

# An exception's likely cause, each with a stable id (a finding's): the patterns read the engine's exception text
# (a runtime's or converter's own words), never a result's message.
_ERRORS: tuple[tuple[str, re.Pattern, str], ...] = (
    ("invalid-graph",
     re.compile(r"INVALID_GRAPH|invalid model|InvalidGraph|GraphInvalid|graph is invalid|not a valid ONNX|"
                r"ValidationError", re.I),
     ("the exported graph is invalid: the runtime refused to load what the converter wrote (a bug of the export, "
      "not a wrong value)")),
    ("no-kernel", re.compile(r"NOT_IMPLEMENTED|Could not find an implementation for", re.I),
     ("the runtime has no kernel for an op of the exported graph in this dtype (a limit of the runtime: declare it "
      "in the engine's dtype_limits)")),
    ("no-bfloat16",
     re.compile(r"bfloat16.{0,80}(not supported|unsupported|cannot|can't|unknown)|"
                r"(not supported|unsupported|cannot|can't|unknown).{0,80}bfloat16", re.I | re.S),
     "the converter does not support bfloat16"),
    ("tflite-converter-failed", re.compile(r"TFLiteConverterFailed|ConverterError", re.I),
     "the TFLite converter failed on the layer's graph (a bug of the conversion, not a wrong value)"),
    ("converter-unicode-crash", re.compile(r"UnicodeDecodeError"),
     ("the converter crashed reading the exported graph (UnicodeDecodeError; seen on grouped convs, which tf2onnx "
      "exports as a function call)")),
    ("worker-died", re.compile(r"worker for \S+ died"), "the engine's process crashed"),
    ("worker-timed-out", re.compile(r"worker for \S+ timed out"), "the engine hung past its timeout"),
)
_OP = re.compile(r"No Op registered for (\w+)|Op type not registered '(\w+)'|implementation for (\w+)\(|"
                 r"\b(StatefulPartitionedCall|PartitionedCall)\b")


def error_cause(exc: BaseException) -> Finding | None:
    """A short cause for an engine's exception, from its whole text: an error_cause finding, or None."""
    text = f"{type(exc).__name__}: {exc}"
    for id, pattern, cause in _ERRORS:
        if pattern.search(text):
            op = _OP.search(text)
            name = next((g for g in op.groups() if g), "") if op else ""
            said = f"; the graph holds an op the runtime does not know: {name}" if name else ""
            return Finding("error_cause", id, cause + said, {"op": name} if name else {})
    return None


# ---------------------------------------------------------------- a cause as a short, stable label

class Judged(Protocol):
    """What a cause label reads of a result (harness.judge.runner.Result has it): fields, never the message."""

    verdict: str
    findings: list[Finding]
    decided_by: str
    xfail_id: str
    xfail_from: str
    error_type: str
    reason_id: str
    reason: str


# What failed where nothing is known of why, by the check that decided (Result.decided_by).
_UNEXPLAINED = {
    "shape": "wrong output shape (no known cause)",
    "dtype": "wrong output dtype",
    "values": "wrong values (no known cause)",
    "expect": "differs from the case's expected facts",
    "refusal": "accepted a configuration it should refuse",
    "presence": "a gradient missing or unknown",
}
_EXCEPTION = re.compile(r"[A-Z]\w*(Error|Exception|Fault)")
_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?(?![\w.])")
_PARENS = re.compile(r"\s*\([^()]*\)")


def finding_label(f: Finding) -> str:
    """A finding as a cause label: its kind and id (what stays when its sentence is reworded)."""
    if f.kind == "mutant":
        return f"mutant {f.id}"
    if f.kind == "gradient_mutant":
        return f"gradient mutant {f.id}"
    if f.kind == "inherited":
        return f"inherited from {f.evidence.get('engine', '?')}: {f.id}"
    if f.kind == "known_bug":
        return f"registered bug: {f.id}"
    if f.kind == "hidden":
        return f"hides {f.evidence.get('engine', '?')}'s known bug: {f.id}"
    return f"{f.kind.replace('_', ' ')}: {f.id}"


def label(outcome: str, result: Judged) -> str:
    """The cause of a failing item (its outcome: fail, xfail, xpass, error) as a short label: the known bug it is
    expected to show, the first (closest) finding, the error's type, or the check that failed where nothing is
    known. A function of the result's fields: rewording a message or a finding's sentence changes no label."""
    if outcome == "xfail":
        return (f"inherited from {result.xfail_from}: {result.xfail_id}" if result.xfail_from
                else f"known bug: {result.xfail_id}")
    if outcome == "xpass":
        return f"known bug no longer shows: {result.xfail_id}"
    found = first(result.findings)
    if found is not None:
        return finding_label(found)
    if outcome == "error":
        inner = result.reason.split(": ", 1)[0]
        if result.error_type == "RuntimeError" and ": " in result.reason and _EXCEPTION.fullmatch(inner):
            # A worker engine carries the converter's own exception inside a RuntimeError (its text starts with
            # the converter's exception name): name that one.
            return f"error: {inner} in the converter"
        return f"error: {result.error_type or 'error'}"
    return _UNEXPLAINED.get(result.decided_by, f"failed: {result.decided_by or 'unknown check'}")


def reason_label(result: Judged, limit: int = 160) -> str:
    """A skip's or refusal's reason, alike ones counted together: the engine's words without their numbers and
    asides (an engine's exception text), or the harness's own fixed sentence."""
    text = result.reason.split("\n")[0]
    if result.reason_id not in ENGINE_WORDS:   # the harness's own reason: a fixed sentence already
        return text[:limit]
    for _ in range(3):   # nested asides
        text = _PARENS.sub("", text)
    return _NUMBER.sub("#", text).strip(" ;,.")[:limit].strip()
