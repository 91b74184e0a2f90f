"""Re-checking a disagreement in fresh processes: a false alarm, a nondeterministic engine, or state-dependent."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import engines as engine_registry
from ..judge.runner import reference
from .check import run_checks
from .configs import to_case, to_yaml
from .observe import decode, differs, encode, observe
from .processes import MODULE, child_env, engine_names, set_threads, thread_counts

RECHECKS = 3               # fresh interpreter processes that re-run a disagreement before it is called a false alarm
RECHECK_TIMEOUT_S = 600    # per fresh process (one configuration in every engine, imports included)


def replay(entry: dict[str, Any], engines: Iterable[str], runs: int = RECHECKS) -> list[dict[str, Any] | str]:
    """Run ``entry`` in every engine in ``runs`` fresh interpreter processes (as many at a time as there are
    cores), each with this process's environment (TF_ENABLE_ONEDNN_OPTS: the same TensorFlow kernel path),
    import path (plug-ins resolve) and thread counts. One item per process: engine -> observation, or why that
    process gave none."""
    engines = list(engines)
    payload = json.dumps({"entry": entry, "engines": [engine_registry.cli_spec(e) for e in engines],
                          "threads": thread_counts(engines)})
    command, env = [sys.executable, "-m", MODULE, "--replay", payload], child_env()
    with ThreadPoolExecutor(max_workers=max(1, min(runs, os.cpu_count() or 1))) as pool:
        return list(pool.map(lambda _: _replay_once(command, env), range(runs)))


def _replay_once(command: list[str], env: dict[str, str]) -> dict[str, Any] | str:
    try:
        proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=RECHECK_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return f"a fresh process ran past {RECHECK_TIMEOUT_S} s"
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return f"a fresh process exited with {proc.returncode}: {tail[:200]}"
    try:
        raw = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return "a fresh process printed no result"
    return {engine: decode(obs) for engine, obs in raw.items()}


def replay_main(payload: str) -> dict[str, Any]:
    """One fresh process of replay: the configuration in every engine, observations as JSON-ready dicts."""
    spec = json.loads(payload)
    names = engine_names(spec["engines"])
    set_threads(spec.get("threads") or {})
    case = to_case(spec["entry"])
    return {name: encode(observe(r)) for name, r in run_checks(case, names).items()}


def _assess(seen: dict[str, Any], fresh: list[dict[str, Any]]) -> tuple[list[str], bool, bool]:
    """A disagreement seen in this process (``seen``: entry, engines that alarmed, observations) against its
    fresh runs -> (engines whose output changed from run to run, reproduced in every fresh run, in any).

    Fresh runs that differ among themselves vary; so do fresh runs that all disagree again, but with other
    values than this process saw. Fresh runs that all pass alike do not vary: the disagreement did not repeat
    outside this process (state-dependent), which is not the same as nondeterminism."""
    here = seen["obs"]
    varying = [e for e, obs in here.items()
               if any(differs(fresh[0][e], f[e], obs["bound"]) for f in fresh[1:] if e in f and e in fresh[0])]
    reproduced = [any(f.get(e, {}).get("verdict") in ("fail", "error") for e in seen["engines"]) for f in fresh]
    if all(reproduced) and not varying:
        varying = [e for e, obs in here.items() if any(e in f and differs(obs, f[e], obs["bound"]) for f in fresh)]
    return varying, all(reproduced), any(reproduced)


def _changes(engine: str, seen: dict[str, Any], fresh: list[dict[str, Any]]) -> str:
    """One line: the values one engine gave at the element where its runs differ most, run by run."""
    runs = [seen["obs"][engine], *(f[engine] for f in fresh if engine in f)]
    ys = [o["y"] for o in runs]
    index = next((tuple(o["worst"]) for o in runs if o["worst"]), None)
    oracle = next((o["oracle"] for o in runs if o["worst"]), None)
    if all(y is not None for y in ys) and len({y.shape for y in ys}) == 1 and ys[0].size:
        stack = np.stack(ys)
        with np.errstate(invalid="ignore"):
            spread = np.nan_to_num(stack.max(axis=0) - stack.min(axis=0), nan=np.inf)
            spread[np.isnan(stack).any(axis=0) & ~np.isnan(stack).all(axis=0)] = np.inf
        if spread.max() > 0:
            index = tuple(int(i) for i in np.unravel_index(int(np.argmax(spread)), spread.shape))
            want = reference(to_case(seen["entry"])).y
            oracle = float(want[index]) if want.shape == ys[0].shape else None

    def at(o: dict[str, Any]) -> str:
        y = o["y"]
        if y is None or index is None or y.ndim != len(index) or any(i >= n for i, n in zip(index, y.shape)):
            return o["verdict"]
        return f"{y[index]:.9g}"

    where = f"at {index}" + (f" (oracle {oracle:.9g})" if oracle is not None else "")
    return (f"nondeterministic in {engine}: its output changes from run to run; {where}: fuzzing process "
            f"{at(runs[0])}, fresh processes {', '.join(at(o) for o in runs[1:])}; verdicts "
            f"{runs[0]['verdict']} | {', '.join(o['verdict'] for o in runs[1:])}; output digests "
            f"{runs[0]['digest']} | {', '.join(o['digest'] for o in runs[1:])}")


def _split(fresh: list[dict[str, Any] | str]) -> tuple[list[dict[str, Any]], list[str]]:
    """replay's answer -> (the observations of the processes that gave one, why the others gave none)."""
    return [r for r in fresh if not isinstance(r, str)], [r for r in fresh if isinstance(r, str)]


@dataclass
class Recheck:
    """What re-running a disagreement in fresh processes showed."""

    kind: str           # "false_alarm" | "nondeterministic" | "state_dependent"
    text: str           # what was seen, the message, and the configuration as a YAML case
    processes: int = 0  # fresh processes run
    entry: dict[str, Any] | None = None   # the configuration the text shows (the smallest of a cause is kept)


def recheck(found: dict[str, Any], engines: Iterable[str], runs: int = RECHECKS) -> Recheck:
    """Classify a disagreement of the search (``found``: the shrunk configuration as "last", the first one
    hypothesis found as "first", each with what every engine computed here) by re-running it in ``runs`` fresh
    processes.

    - output that differs between runs (fresh ones, or fresh against this process) -> nondeterministic;
    - the shrunk configuration reproduces deterministically -> a false alarm, as shrunk;
    - it does not reproduce, but the first (unshrunk) one does -> a false alarm, as first found (said so);
    - neither reproduces in a fresh process -> state-dependent (it disagreed in the fuzzing process only).
    The unshrunk configuration is re-run only when the shrunk one does not reproduce."""
    engines = list(engines)
    last, first = found["last"], found["first"]
    notes = (found.get("note"), f"hypothesis: {found['flaky']}" if found.get("flaky") else None)
    note = "".join(f"  # {n}\n" for n in notes if n)
    if runs <= 0:
        return Recheck("false_alarm", f"{last['message']}\n{note}{to_yaml(last['entry'], 'fuzz-shrunk')}",
                       entry=last["entry"])
    fresh, broken = _split(replay(last["entry"], engines, runs))
    if broken:
        return Recheck("false_alarm", f"{last['message']}\n  # not re-checked: {broken[0]}\n{note}"
                                      f"{to_yaml(last['entry'], 'fuzz-shrunk')}", runs, last["entry"])
    varying, everywhere, _ = _assess(last, fresh)
    if varying:
        return Recheck("nondeterministic", "\n".join([*(_changes(e, last, fresh) for e in varying), last["message"],
                                                      note + to_yaml(last["entry"], "fuzz-nondeterministic")]),
                       runs, last["entry"])
    if everywhere:
        return Recheck("false_alarm", f"{last['message']}\n  # reproduced with the same values in {runs} fresh "
                                      f"processes\n{note}{to_yaml(last['entry'], 'fuzz-shrunk')}", runs,
                       last["entry"])
    unshrunk = first["entry"] != last["entry"]
    processes = runs
    if unshrunk:
        fresh_first, broken = _split(replay(first["entry"], engines, runs))
        processes += runs
        if broken:   # conservative: an alarm that could not be re-checked stays an alarm
            return Recheck("false_alarm", (
                f"{first['message']}\n  # the shrunk configuration passed in {runs} fresh processes; this first, "
                f"unshrunk one could not be re-checked: {broken[0]}\n"
                f"{note}{to_yaml(first['entry'], 'fuzz-unshrunk')}"), processes, first["entry"])
        varying, everywhere, _ = _assess(first, fresh_first)
        if varying:
            return Recheck("nondeterministic", "\n".join(
                [*(_changes(e, first, fresh_first) for e in varying), first["message"],
                 f"  # the shrunk configuration passed in {runs} fresh processes; this is the first one found",
                 note + to_yaml(first["entry"], "fuzz-nondeterministic")]), processes, first["entry"])
        if everywhere:
            return Recheck("false_alarm", (
                f"{first['message']}\n  # the shrunk configuration passed in {runs} fresh processes; this is "
                f"the first, unshrunk configuration found, which reproduced with the same values in {runs}\n"
                f"{note}{to_yaml(first['entry'], 'fuzz-unshrunk')}"), processes, first["entry"])
    which = "the shrunk and the first (unshrunk) configuration" if unshrunk else "the configuration"
    text = (f"state-dependent: disagreed in the fuzzing process only; {which} passed in {runs} fresh processes "
            f"each: {last['message']}\n{note}{to_yaml(last['entry'], 'fuzz-state-dependent')}")
    if unshrunk:
        text += f"\n  # first found, unshrunk:\n{to_yaml(first['entry'], 'fuzz-state-dependent-unshrunk')}"
    return Recheck("state_dependent", text, processes, last["entry"])
