"""Facts that decide what a framework does: versions, TensorFlow's CPU kernel path, CPU features, backend.

A behaviour of a framework holds for a version on a kernel path on a CPU, so the harness records these facts
with every result and states known behaviour in terms of them (harness/known/conditions.py). Nothing here imports a
framework: a runtime fact (oneDNN on or off, the Keras backend) is read only from a framework that an engine
has already loaded, and is absent (None) otherwise. The frameworks' own log lines are kept out of a run's output
(quiet_imports) unless --verbose asks for them.
"""
from __future__ import annotations

import contextlib
import functools
import importlib.abc
import os
import platform
import re
import sys
import tempfile
from collections.abc import Iterator
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


@functools.cache
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
    except Exception:  # noqa: BLE001 - a query a framework version lacks is recorded as null
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


# ---------------------------------------------------------------- framework log noise

# Set by --verbose (request_verbose), inherited by every process a run starts (engine, fuzz and xdist workers):
# the frameworks' own log lines are shown. Unset, they are silenced as TensorFlow is imported (quiet_imports).
VERBOSE_VARIABLE = "HARNESS_VERBOSE"
TF_LOG_VARIABLE = "TF_CPP_MIN_LOG_LEVEL"   # TensorFlow's C++ log threshold: 0 all, 1 no INFO, 2 no WARNING, 3 no ERROR
# What a user set before the harness ran: theirs is kept (read when the hook is installed, at harness.engines'
# import, before harness.keras_layer puts its own default in place).
_USER_TF_LEVEL: str | None = None
# A line absl writes (``I0000 00:00:1796.12 5425 port.cc:153] ...``): severity, date, time, thread, file:line.
_ABSL_LINE = re.compile(r"^([IWEF])\d{4} \d\d:\d\d:\d\d\.\d+\s+\d+ \S+:\d+\] ")
# absl's banner before its first line while logging is not initialised (TensorFlow's import-time lines): no
# threshold reaches these, so they are filtered here.
_ABSL_BANNER = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
# The start of a line that is not the continuation of an absl message (a Python warning, a traceback).
_OWN_LINE = re.compile(r"^(\S.*:\d+: \w*Warning: |Traceback |\s*File \")")


def request_verbose(verbose: bool) -> None:
    """--verbose: show the frameworks' own log lines in this process and the processes it starts."""
    if verbose:
        os.environ[VERBOSE_VARIABLE] = "1"


def verbose() -> bool:
    return os.environ.get(VERBOSE_VARIABLE, "") not in ("", "0")


def tf_log_level() -> int:
    """The TensorFlow C++ log threshold a run uses: the user's TF_CPP_MIN_LOG_LEVEL, else 0 with --verbose and 3
    (errors too: TensorFlow's errors that matter reach Python as exceptions) without."""
    user = _USER_TF_LEVEL
    if user is not None and user.strip().isdigit():
        return int(user)
    return 0 if verbose() else 3


def drop_log_noise(text: str, level: int) -> str:
    """``text`` without the absl lines under ``level`` (their continuation lines included) and absl's banner."""
    kept, dropping = [], False
    for line in text.splitlines(keepends=True):
        found = _ABSL_LINE.match(line)
        if found or line.rstrip("\r\n") == _ABSL_BANNER:
            dropping = level > 0 and (found is None or "IWEF".index(found.group(1)) < level)
        elif _OWN_LINE.match(line):
            dropping = False
        if not dropping:
            kept.append(line)
    return "".join(kept)


@contextlib.contextmanager
def _stderr_filtered(level: int) -> Iterator[None]:
    """Collect what is written to file descriptor 2 (C++ code writes there, past sys.stderr) and write it back
    without the log noise. No-op where fd 2 cannot be duplicated."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    with tempfile.TemporaryFile() as collected:   # a file, not a pipe: nothing blocks however much is written
        os.dup2(collected.fileno(), 2)
        try:
            yield
        finally:
            try:
                sys.stderr.flush()
            finally:
                os.dup2(saved, 2)
                os.close(saved)
            collected.seek(0)
            rest = drop_log_noise(collected.read().decode("utf-8", "replace"), level)
            if rest:
                sys.stderr.write(rest)
                sys.stderr.flush()


class _QuietImports(importlib.abc.MetaPathFinder):
    """Finds nothing itself: wraps the loading of TensorFlow and Keras so that the log lines they write while
    loading (absl's, before its logging is initialised: TF_CPP_MIN_LOG_LEVEL does not reach them) are filtered,
    and sets their loggers' thresholds once loaded. With --verbose everything shows."""

    NAMES = ("tensorflow", "keras")

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name not in self.NAMES or name in sys.modules:
            return None
        level = tf_log_level()
        if _USER_TF_LEVEL is None:   # before TensorFlow reads it; a user's own value stands
            os.environ[TF_LOG_VARIABLE] = str(level)
        spec = None
        for finder in sys.meta_path:   # the finder that really loads it
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        loader = getattr(spec, "loader", None)
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        load = loader.exec_module

        def exec_module(module: Any) -> None:
            with _stderr_filtered(level) if level > 0 else contextlib.nullcontext():
                load(module)
            if level > 0:
                _quiet_loggers(name, module)

        loader.exec_module = exec_module   # this module's own loader instance only
        return spec


def _quiet_loggers(name: str, module: Any) -> None:
    """Python-side messages: TensorFlow's logger and absl's (retracing warnings, deprecations) to errors only;
    Keras's interactive messages (progress bars, summaries) to absl's logging, hence off too."""
    import logging

    if name == "tensorflow":
        logging.getLogger("tensorflow").setLevel(logging.ERROR)
        absl = sys.modules.get("absl.logging")
        if absl is not None:
            attempt(lambda: absl.set_verbosity(absl.ERROR))
    else:   # the other of _QuietImports.NAMES: keras (a module name, not the engine)
        attempt(lambda: module.config.disable_interactive_logging())


def quiet_imports() -> None:
    """Install the import hook that silences TensorFlow's and Keras's log noise (once per process; harness.engines
    calls it, so every process that can run an engine has it before any framework loads)."""
    global _USER_TF_LEVEL
    if any(isinstance(f, _QuietImports) for f in sys.meta_path):
        return
    _USER_TF_LEVEL = os.environ.get(TF_LOG_VARIABLE)
    sys.meta_path.insert(0, _QuietImports())


def keras_backend() -> str | None:
    keras = sys.modules.get("keras")
    if keras is None or not hasattr(keras, "backend"):
        return None
    try:
        return str(keras.backend.backend())
    except Exception:  # noqa: BLE001 - a half-imported keras: the backend is unknown, not a crash
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
