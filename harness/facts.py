"""Facts that decide what a framework does: versions, TensorFlow's CPU kernel path, CPU features, backend.

A behaviour of a framework holds for a version on a kernel path on a CPU, so the harness records these facts
with every result and states known behaviour in terms of them (harness/conditions.py). Nothing here imports a
framework: a runtime fact (oneDNN on or off, the Keras backend) is read only from a framework that an engine
has already loaded, and is absent (None) otherwise.
"""
from __future__ import annotations

import functools
import os
import platform
import sys
from importlib import metadata
from typing import Any

# CPU features that change which kernels TensorFlow (oneDNN) and PyTorch pick on x86.
CPU_FEATURES = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_int8",
                "amx_tile", "avx_vnni", "asimd", "sve")
# Distributions whose version a condition may ask for: fact name -> distribution names, first installed wins.
VERSIONED = {
    "keras": ("keras",),
    "tensorflow": ("tensorflow-cpu", "tensorflow"),
    "torch": ("torch",),
    "numpy": ("numpy",),
}
# The variable TensorFlow reads once, at import, to choose oneDNN ("1") or its Eigen kernels ("0").
ONEDNN_VARIABLE = "TF_ENABLE_ONEDNN_OPTS"
# Set with it by request_onednn, so that the keras engine (here or in an xdist worker) can check that
# TensorFlow really runs the path a run asked for.
REQUEST_VARIABLE = "HARNESS_TF_ONEDNN"


@functools.lru_cache(maxsize=None)
def version(fact: str) -> str | None:
    """Installed version of a VERSIONED fact, from package metadata (no import)."""
    for dist in VERSIONED[fact]:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


def dist_version(dist: str) -> str | None:
    """Installed version of a distribution, from package metadata (no import); None where not installed."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def attempt(fn: Any) -> Any:
    """fn(), or None where it raises: a query that a framework version lacks is recorded as null, never a crash."""
    try:
        return fn()
    except Exception:  # noqa: BLE001
        return None


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as Linux reports them (empty where /proc/cpuinfo is unavailable)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith(("flags", "features")):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def onednn() -> bool | None:
    """Whether the loaded TensorFlow runs its oneDNN CPU kernels, as TensorFlow itself decided at import
    (TF_ENABLE_ONEDNN_OPTS, else its default for this CPU). None while TensorFlow is not loaded."""
    if "tensorflow" not in sys.modules:
        return None
    try:
        from tensorflow.python.util import _pywrap_util_port  # the flag TensorFlow's kernels consult

        return bool(_pywrap_util_port.IsMklEnabled())
    except Exception:  # noqa: BLE001 - a TensorFlow without this query: the fact is unknown, not a crash
        return None


def request_onednn(choice: str | None) -> None:
    """Choose TensorFlow's CPU kernel path for this process and its children: "on" (oneDNN), "off" (Eigen), or
    None (TensorFlow's default for this CPU). Must run before TensorFlow is imported; refuses afterwards."""
    if choice is None:
        return
    if choice not in ("on", "off"):
        raise ValueError(f"oneDNN choice must be on or off, got {choice!r}")
    want = choice == "on"
    loaded = onednn()
    if loaded is not None and loaded != want:
        raise ValueError(f"TensorFlow is already loaded with oneDNN {'on' if loaded else 'off'}; "
                         f"the kernel path can only be chosen before it is imported")
    os.environ[ONEDNN_VARIABLE] = "1" if want else "0"
    os.environ[REQUEST_VARIABLE] = choice


def requested_onednn() -> bool | None:
    """The kernel path a run asked for with request_onednn (None: TensorFlow's default)."""
    choice = os.environ.get(REQUEST_VARIABLE)
    return None if choice is None else choice == "on"


def keras_backend() -> str | None:
    keras = sys.modules.get("keras")
    if keras is None or not hasattr(keras, "backend"):
        return None
    try:
        return str(keras.backend.backend())
    except Exception:  # noqa: BLE001
        return None


def process_facts() -> dict[str, Any]:
    """The facts of this process, as conditions see them (runtime facts only once their framework loaded)."""
    facts: dict[str, Any] = {name: version(name) for name in VERSIONED}
    facts.update(
        machine=platform.machine(),
        cpu_has=sorted(cpu_flags()),
        onednn=onednn(),
        keras_backend=keras_backend(),
    )
    return facts
