"""Engine registry: one line per engine; traits are read from engine classes, frameworks load only when one runs."""
from __future__ import annotations

import importlib
from typing import Any

from .base import Engine, EngineOption, EngineOutput, FunctionEngine, Inputs, Request

# name -> "module:class". Importing this package imports no framework.
BUILTIN: dict[str, str] = {
    "oracle": "harness.engines.oracle_engine:OracleEngine",
    "keras": "harness.engines.keras_engine:KerasEngine",
    "torch": "harness.engines.torch_engine:TorchEngine",
}
DEFAULT_ENGINES = ("oracle", "keras", "torch")
# The engine every other engine is judged against: the one built-in whose class says reference = True.
REFERENCE = "oracle"

_loaded: dict[str, Engine] = {}
_plugins: dict[str, str] = {}


def _resolve(spec: str) -> Any:
    module, _, attr = spec.partition(":")
    if not module or not attr:
        raise ValueError(f"engine {spec!r} must be MODULE:CALLABLE")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def plugin_name(spec: str) -> str:
    """Engine name of a plug-in spec: NAME=MODULE:CALLABLE names it, else the callable's name."""
    if "=" in spec:
        return spec.split("=", 1)[0]
    return spec.rpartition(":")[2].rpartition(".")[2]


def register_plugin(spec: str) -> str:
    """Register ``[NAME=]MODULE:CALLABLE`` as an engine (resolved lazily) and return its name."""
    name = plugin_name(spec)
    if name in BUILTIN:
        raise ValueError(f"plug-in engine name {name!r} clashes with a built-in engine; use NAME=MODULE:CALLABLE")
    _plugins[name] = spec.split("=", 1)[1] if "=" in spec else spec
    return name


def cli_spec(name: str) -> str:
    """How a command line names engine ``name``: a built-in by its name, a plug-in as NAME=MODULE:CALLABLE."""
    return f"{name}={_plugins[name]}" if name in _plugins else name


def engine_class(name: str) -> type[Engine]:
    """The class of engine ``name``, for its traits: imports its module, not its framework."""
    if name in BUILTIN:
        return _resolve(BUILTIN[name])
    if name in _plugins:
        return FunctionEngine
    raise KeyError(f"unknown engine {name!r}; known: {', '.join([*BUILTIN, *_plugins])}")


def is_reference(name: str) -> bool:
    """Whether ``name`` is the reference (the oracle): judged in float64, never against a bound of its own."""
    return name in BUILTIN and engine_class(name).reference   # a plug-in (or an unknown name) never is


def get(name: str) -> Engine:
    """The engine called ``name``, importing its module (and its framework) on first use."""
    if name not in _loaded:
        if name in BUILTIN:
            _loaded[name] = _resolve(BUILTIN[name])()
        elif name in _plugins:
            _loaded[name] = FunctionEngine(name, _resolve(_plugins[name]))
        else:
            raise KeyError(f"unknown engine {name!r}; known: {', '.join([*BUILTIN, *_plugins])}")
    return _loaded[name]


__all__ = ["BUILTIN", "DEFAULT_ENGINES", "Engine", "EngineOption", "EngineOutput", "FunctionEngine", "Inputs",
           "REFERENCE", "Request", "cli_spec", "engine_class", "get", "is_reference", "plugin_name",
           "register_plugin"]
