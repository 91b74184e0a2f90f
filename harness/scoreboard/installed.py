"""Which engines the scoreboard runs: every installed one; the others are listed with how to install them."""
from __future__ import annotations

import importlib.util
from typing import Any

from .. import engines
from ..cases.selection import select_engines


def not_installed(name: str) -> str:
    """Why engine ``name`` cannot run here ('' where it can): its own venv is missing, or its framework."""
    cls = engines.engine_class(name)
    isolation = cls.isolation
    if isolation is not None and isolation.venv:
        from ..engines.worker import engines_dir  # the worker's own rule for where venvs live

        if not (engines_dir() / isolation.venv / "bin" / "python").exists():
            return f"not installed: make engine-{isolation.venv}"
        return ""
    framework = cls.framework if name in engines.BUILTIN else None
    if framework and importlib.util.find_spec(framework.split(".")[0]) is None:
        return f"not installed: no {framework} module in this environment"
    return ""


def choose(specs: list[str]) -> tuple[list[str], list[dict[str, Any]]]:
    """``--engine`` values -> (engines to run, [{engine, reason}] of those not installed). Without a built-in
    named, every built-in of the registry is a candidate (not only the default three), plus the plug-ins."""
    selected = select_engines(specs)   # registers the plug-ins (and says what is wrong with a spec)
    named = [s for s in specs if s in engines.BUILTIN]
    candidates = selected if named else [*engines.BUILTIN, *(n for n in selected if n not in engines.BUILTIN)]
    run, missing = [], []
    for name in dict.fromkeys(candidates):
        reason = not_installed(name)
        if reason:
            missing.append({"engine": name, "reason": reason})
        else:
            run.append(name)
    return run, missing


def environment_of(name: str) -> dict[str, Any]:
    """An engine's environment as it reports it (a worker engine's from its venv, asked of its running worker: ask
    in the process that ran its items, or it starts one only to answer)."""
    try:
        instance = engines.get(name)
        ask = getattr(instance, "worker_environment", None)
        return ask() if callable(ask) else type(instance).environment()
    except Exception as exc:  # noqa: BLE001 - a row without versions still shows its verdicts
        return {"error": f"{type(exc).__name__}: {exc}"}


def describe(name: str, environment: dict[str, Any] | None = None) -> dict[str, Any]:
    """A scoreboard row's engine: what it is, its versions (``environment``, as environment_of read it where the
    items ran; asked here where not given) and the options a case may give it."""
    cls = engines.engine_class(name)
    if environment is None:
        environment = environment_of(name)
    plugin = name not in engines.BUILTIN
    return {
        "name": name,
        "kind": "plug-in" if plugin else "built-in",
        "spec": engines.cli_spec(name),
        "inherits": cls.inherits,
        "dtype_limits": dict(cls.dtype_limits),
        "options": {option: spec.doc for option, spec in cls.options.items()},
        "environment": environment,
        "versions": versions_line(environment),
    }


def versions_line(environment: dict[str, Any]) -> str:
    """'keras 3.15.1, tensorflow 2.21.0' from an engine's environment(): framework -> facts with a "version", or
    (a converter's) engine -> {package: version}."""
    found: dict[str, str] = {}
    for name, facts in environment.items():
        if not isinstance(facts, dict):
            continue
        if facts.get("version"):
            found[name] = str(facts["version"])
        else:
            found.update({package: str(v) for package, v in facts.items()
                          if isinstance(v, str) and v[:1].isdigit()})
    return ", ".join(f"{package} {version}" for package, version in sorted(found.items()))
