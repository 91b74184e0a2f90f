"""Fresh interpreter processes for workers and re-checks: their environment, plug-in engines, thread counts, and
ending them."""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable
from typing import Any

from .. import engines as engine_registry

MODULE = "harness.fuzz.search"   # what fresh processes run (__name__ is "__main__" in a worker)


def child_env() -> dict[str, str]:
    """This process's environment for a fresh interpreter (a fuzz worker, a replay), with this process's import
    path as PYTHONPATH: a plug-in whose module is found here through sys.path (a folder that pytest or a script
    put there, not the current directory) is found there too, rather than failing as an engine error in every
    configuration, which the fuzzer would report as false alarms."""
    env = dict(os.environ)
    paths = [p or os.getcwd() for p in sys.path] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


def engine_names(specs: Iterable[str]) -> list[str]:
    """Engine names from what a command line passes: built-in names, NAME=MODULE:CALLABLE plug-ins (registered
    here, so that a fresh process knows them)."""
    return [engine_registry.register_plugin(s) if ":" in s else s for s in specs]


def thread_counts(engines: list[str]) -> dict[str, Any]:
    """The thread counts this process runs its frameworks with (engine -> its thread_count), for a fresh process
    to run the same."""
    counts = {name: engine_registry.engine_class(name).thread_count() for name in engines}
    return {name: count for name, count in counts.items() if count is not None}


def set_threads(counts: dict[str, Any]) -> None:
    """Apply thread_counts' answer (0: the framework's default), before the framework runs anything."""
    for name, count in counts.items():
        engine_registry.engine_class(name).set_threads(count)


def stop(procs: list[subprocess.Popen]) -> None:
    """Terminate the jobs still running (each kills its engine workers on SIGTERM), then kill what is left."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
