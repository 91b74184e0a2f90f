"""The condition language: when a pinned framework behaviour holds, as a mapping from facts to what they must be.

    when: {keras: "==3.15.1", onednn: false}            # every entry must hold
    when: {any: [{onednn: true}, {keras_xla: true}]}    # at least one of the alternatives

A fact that is not known in this run (its framework never loaded, or it is a run fact of another engine) makes
the condition not hold, and the explanation says which fact was unknown.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

# name -> (kind, what it is). Kinds: version (a PEP 440 specifier), bool, text (one value or a list of
# alternatives), flags (CPU flags that must all be present). Process facts come from harness/known/facts.py; run
# facts from the engine's result for the item being judged.
FACTS: dict[str, tuple[str, str]] = {
    "keras": ("version", "installed Keras version, e.g. \"==3.15.1\" or \">=3.10,<3.16\""),
    "tensorflow": ("version", "installed TensorFlow version"),
    "torch": ("version", "installed PyTorch version"),
    "numpy": ("version", "installed NumPy version"),
    "onednn": ("bool", ("TensorFlow runs its oneDNN CPU kernels (as TensorFlow decided at import: "
                        "TF_ENABLE_ONEDNN_OPTS, else its default for this CPU)")),
    "keras_backend": ("text", "the Keras backend: tensorflow, jax, torch"),
    "machine": ("text", "the processor architecture: x86_64, aarch64"),
    "cpu_has": ("flags", "CPU feature flags that must all be present, e.g. [avx512_bf16]"),
    "dtype": ("text", "case fact: the case dtype (float16, bfloat16, float32, float64)"),
    "layer": ("text", "case fact: the Keras layer class"),
    "keras_layer_format": ("text", ("run fact: the data_format the Keras layer itself ran in (channels_first "
                                    "natively, or channels_last when the engine transposed around it)")),
    "keras_xla": ("bool", ("run fact: Keras compiled the convolution with XLA (it does for grouped convs and for "
                           "channels_first Conv3D)")),
    "torch_threads": ("text", ("run fact: torch's intra-op threads when the torch engine ran the item ('1', '2', "
                               "...): oneDNN picks another kernel for one thread (xdist workers and the fuzzer run "
                               "one)")),
}
ANY = "any"


@dataclass(frozen=True)
class Evaluation:
    holds: bool
    explanation: str    # each fact asked for with the value seen here, e.g. "onednn=true (here: false)"


def validate(when: Any, where: str) -> list[str]:
    """Problems with a condition as written, each naming its field under ``where``."""
    if isinstance(when, Mapping):
        problems = []
        for key, value in when.items():
            field = f"{where}.{key}"
            if key == ANY:
                if not isinstance(value, list) or not value:
                    problems.append(f"{field}: must be a non-empty list of conditions")
                else:
                    for i, alternative in enumerate(value):
                        problems += validate(alternative, f"{field}[{i}]")
            elif key not in FACTS:
                problems.append(f"{field}: unknown fact; known: {', '.join([*FACTS, ANY])}")
            else:
                problems += _validate_value(FACTS[key][0], value, field)
        return problems
    return [f"{where}: a condition is a mapping fact -> value, got {when!r}"]


def _validate_value(kind: str, value: Any, field: str) -> list[str]:
    if kind == "version":
        try:
            SpecifierSet(str(value))
        except InvalidSpecifier:
            return [f"{field}: not a version specifier (e.g. \"==3.15.1\" or \">=2.16,<2.22\"): {value!r}"]
        return []
    if kind == "bool":
        return [] if isinstance(value, bool) else [f"{field}: must be true or false, got {value!r}"]
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(v, str) for v in values):
        return [f"{field}: must be text or a list of text, got {value!r}"]
    return []


def evaluate(when: Mapping[str, Any] | None, facts: Mapping[str, Any]) -> Evaluation:
    """Whether ``when`` holds for ``facts``; no condition always holds."""
    if not when:
        return Evaluation(True, "always")
    results = []
    for key, want in when.items():
        if key == ANY:
            alternatives = [evaluate(a, facts) for a in want]
            holds = any(a.holds for a in alternatives)
            results.append((holds, "any of (" + " | ".join(a.explanation for a in alternatives) + ")"))
        else:
            results.append(_fact_holds(key, want, facts.get(key)))
    return Evaluation(all(h for h, _ in results), ", ".join(text for _, text in results))


def _fact_holds(key: str, want: Any, have: Any) -> tuple[bool, str]:
    kind = FACTS[key][0]
    if have is None:
        return False, f"{key}{_show(kind, want)} (here: unknown)"
    if kind == "version":
        try:
            holds = Version(str(have)) in SpecifierSet(str(want))
        except InvalidVersion:
            holds = False
        return holds, f"{key}{want} (here: {have})"
    if kind == "bool":
        return bool(have) == want, f"{key}={_json(want)} (here: {_json(bool(have))})"
    if kind == "flags":
        wanted = [want] if isinstance(want, str) else list(want)
        missing = [f for f in wanted if f not in have]
        return not missing, f"{key}={wanted} (here: {'missing ' + ', '.join(missing) if missing else 'present'})"
    alternatives = want if isinstance(want, list) else [want]
    return have in alternatives, f"{key}={'|'.join(alternatives)} (here: {have})"


def _show(kind: str, want: Any) -> str:
    return str(want) if kind == "version" else f"={_json(want) if kind == 'bool' else want}"


def _json(value: Any) -> str:
    return "true" if value is True else "false" if value is False else str(value)


def describe(when: Mapping[str, Any] | None) -> str:
    """The condition in one line, as the README and messages print it."""
    if not when:
        return "always"
    parts = []
    for key, want in when.items():
        if key == ANY:
            parts.append("any of (" + " | ".join(describe(a) for a in want) + ")")
        else:
            parts.append(f"{key}{_show(FACTS[key][0], want)}")
    return ", ".join(parts)
