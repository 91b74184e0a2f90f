"""Isolated engines for tests/engines/test_worker.py: the oracle's answer, or a crash, a hang, a refusal, on request."""
from __future__ import annotations

import os
import signal
import sys
import time

import numpy as np

from harness.reference import oracle
from harness.engines.base import Engine, EngineOption, EngineOutput, Isolation, Request
from harness.engines.stopwatch import third_party
from harness.errors import EngineRejected, EngineSkip

VARIABLE = "HARNESS_FAKE_WORKER_VARIABLE"   # set by the isolation only: visible in the worker, not the harness
SPENT = 0.3   # seconds the "spend" actions spend inside a third-party call
LOG = "HARNESS_FAKE_WORKER_LOG"   # a file each request appends "XDIST-WORKER ENGINE PID PARENT-PID" to


def answer(layer: str, config: dict, x: np.ndarray, weights: dict) -> EngineOutput:
    """Everything an EngineOutput holds, in several dtypes: the oracle's output rounded to the case dtype."""
    y64 = oracle.run(layer, config, x.astype(np.float64), {k: v.astype(np.float64) for k, v in weights.items()})
    return EngineOutput(
        y=y64.astype(x.dtype), params=int(sum(v.size for v in weights.values())),
        weight_shapes={k: tuple(v.shape) for k, v in weights.items()}, notes=["fake", "ünïcode"],
        gauge_extra=np.abs(y64) / 3, extra_roundings=2,
        intermediate={"rounded": y64.astype(x.dtype), "wide": y64},
        facts={"variable": os.environ.get(VARIABLE), "pid": os.getpid(), "onednn": np.bool_(False)})


def act(action: str) -> None:
    """Misbehave as a case asks (engine_options: {ENGINE: {action: ...}})."""
    if action == "segfault":
        os.kill(os.getpid(), signal.SIGSEGV)
    elif action == "exit":
        os._exit(3)
    elif action == "hang":
        time.sleep(120)
    elif action == "reject":
        raise EngineRejected("the fake framework refuses this", {"onednn": False, "fake_fact": 7})
    elif action == "skip":
        raise EngineSkip("the fake framework is not here")
    elif action == "not_implemented":
        raise NotImplementedError("the fake port has no such layer")
    elif action == "crash":
        raise ValueError("the fake port crashed")
    elif action.startswith("spend"):
        # SPENT seconds in a "framework call" (then a refusal where it says spend-reject): they cross back either way.
        with third_party():
            time.sleep(SPENT)
        if action == "spend-reject":
            raise EngineRejected("the fake framework refuses this after a while")
    elif action == "chatter":
        # Stray output on fd 1, from Python and from "C": it must not corrupt the protocol.
        print("stray print from the engine")
        sys.stdout.flush()
        os.write(1, b"\x00\x00\x00\x05garbage on fd 1\n")


def _log(engine: str) -> None:
    if os.environ.get(LOG):
        with open(os.environ[LOG], "a") as log:
            log.write(f"{os.environ.get('PYTEST_XDIST_WORKER', '-')} {engine} {os.getpid()} {os.getppid()}\n")


class Fake(Engine):
    """Computes the oracle's answer in a worker with an environment variable of its own."""

    name = "fake"
    options = {"action": EngineOption(str, "misbehave: segfault, exit, hang, reject, skip, crash, chatter")}
    isolation = Isolation(env=((VARIABLE, "set-by-isolation"),), timeout_s=60)

    @classmethod
    def environment(cls) -> dict:
        return {"fake": {"variable": os.environ.get(VARIABLE)}}

    def run(self, request: Request) -> EngineOutput:
        _log(self.name)
        act(request.options.get("action", ""))
        inputs = request.inputs
        return answer(request.layer, request.config, inputs.x, inputs.weights)


class SlowStart(Fake):
    """Fake whose construction (a framework's import) takes START_S seconds inside a third-party call."""

    name = "slowstart"
    START_S = 0.6

    def __init__(self) -> None:
        with third_party():
            time.sleep(self.START_S)


class Hasty(Fake):
    """Fake with a 2 s timeout."""

    name = "hasty"
    isolation = Isolation(timeout_s=2)


class InMissingVenv(Fake):
    """Fake that runs in a venv nobody made."""

    name = "missing"
    isolation = Isolation(venv="no-such-venv")


class InVenv(Fake):
    """Fake that runs in the venv .engines/fakevenv (a test makes one whose python is ours)."""

    name = "invenv"
    isolation = Isolation(venv="fakevenv", timeout_s=60)


def plugin(layer, config, x, weights):
    """The plug-in form (fn(layer, config, x, weights)) of Fake."""
    _log("plugin")
    return answer(layer, config, x, weights)
