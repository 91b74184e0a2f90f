"""Seconds spent inside third-party calls (a framework's or converter's own work), counted per process.

An engine wraps each call into its framework or converter (building the Keras model, exporting it, converting,
loading a runtime, running it) in ``third_party()``; whatever else an item costs is the harness's: its port, the
worker protocol, the reference and the judging. A worker hands its count back with every answer and the parent
credits it, so that the runner reads one count per item (judge.runner.run_one: Result.third_party_s) and the
scoreboard can say, per engine, how much of its wall time the converter itself took.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

_state = {"seconds": 0.0, "depth": 0}


@contextmanager
def third_party() -> Iterator[None]:
    """Count the wall time of the block as third-party work; nested blocks count once (the outermost)."""
    _state["depth"] += 1
    start = time.perf_counter()
    try:
        yield
    finally:
        _state["depth"] -= 1
        if _state["depth"] == 0:
            _state["seconds"] += time.perf_counter() - start


def credit(seconds: float) -> None:
    """Add seconds counted elsewhere (a worker's answer) to this process's count."""
    _state["seconds"] += max(0.0, float(seconds))


def take() -> float:
    """The seconds counted since the last take(), and start again from zero."""
    seconds, _state["seconds"] = _state["seconds"], 0.0
    return seconds
