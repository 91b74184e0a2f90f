"""The one place that turns --engine options into the list of engines to run."""
from __future__ import annotations

from . import engines


def select_engines(specs: list[str] | None) -> list[str]:
    """``--engine`` values -> engine names.

    A built-in name (oracle, keras, torch) restricts the run to the built-ins named; ``[NAME=]MODULE:CALLABLE``
    adds a plug-in. With no built-in named, all built-ins run.
    """
    builtins, plugins = [], []
    for spec in specs or []:
        if ":" in spec:
            plugins.append(engines.register_plugin(spec))
        elif spec in engines.BUILTIN:
            builtins.append(spec)
        else:
            raise ValueError(f"--engine {spec!r}: not a built-in engine ({', '.join(engines.BUILTIN)}) "
                             "nor MODULE:CALLABLE")
    chosen = builtins or list(engines.DEFAULT_ENGINES)
    return list(dict.fromkeys(chosen + plugins))
