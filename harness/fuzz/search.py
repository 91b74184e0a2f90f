"""The fuzz search: hypothesis runs to a budget, every alarm counted under its cause, one example per cause shrunk
and re-checked; run() splits a budget over worker processes, and this module's __main__ is the worker (MODULE).

A configuration a framework refuses is counted as rejected, apart from disagreements. A disagreement that a
registry entry explains (harness/known/registry.py: its condition holds here and the configuration triggers it)
is a true alarm, counted by registry id. Any other disagreement (or an engine crash) is shrunk by hypothesis and then
re-checked in fresh interpreter processes before it is called a false alarm: output that changes from run to run
is a nondeterministic engine (a true bug), a disagreement no fresh process reproduces is state-dependent, and
one that reproduces deterministically is printed as a ready-to-paste YAML case.

Alarms are grouped by cause (the first finding of the diagnosis, else the check that failed or the error type): the
search goes on to its budget, counting every alarm under its cause, and shrinks and re-checks one example per
cause, the smallest it can find.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from typing import Any

from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from .. import engines as engine_registry
from ..engines import DEFAULT_ENGINES
from ..engines.worker import end_with_parent, end_workers_on
from .alarms import cause, known_bug, without_numbers
from .check import check, check_entry, run_checks
from .configs import FUZZ_FILE, to_case, to_yaml
from .processes import MODULE, child_env, engine_names, set_threads, stop
from .recheck import RECHECKS, Recheck, recheck, replay, replay_main
from .render import format_stats
from .shards import merge_summaries, shard_budget, shard_seed, summary
from .stats import KINDS, Stats, size_of
from .strategies import DATA_FORMATS, DTYPES, entries, filters

# The names callers and tests import from this module, the fuzzer's front door (they live in the modules beside it).
__all__ = ["DATA_FORMATS", "DTYPES", "FUZZ_FILE", "KINDS", "MAX_CAUSES", "MODULE", "RECHECKS", "FalseAlarm", "Recheck",
           "Stats", "cause", "check_entry", "entries", "filters", "format_stats", "known_bug", "merge_summaries",
           "recheck", "replay", "run", "run_checks", "search", "shard_budget", "shard_seed", "summary", "to_case",
           "to_yaml"]

MAX_CAUSES = 20            # causes shrunk and re-checked per search; beyond, a cause is reported as first found


class FalseAlarm(AssertionError):
    """A valid configuration on which an engine disagreed with the oracle (or crashed)."""


def search(examples: int, engines: Iterable[str] = DEFAULT_ENGINES, seed: int | None = 0,
           strategy: st.SearchStrategy | None = None, progress: bool = False, rechecks: int = RECHECKS,
           layers: Iterable[str] | None = None, dtypes: Iterable[str] | None = None,
           max_causes: int = MAX_CAUSES) -> Stats:
    """Try ``examples`` configurations in every engine, counting each alarm (a disagreement no registry entry
    explains, or a crash) under its cause (see cause). The first example of a new cause is shrunk by hypothesis
    to the smallest configuration with that cause, re-checked in ``rechecks`` fresh processes (recheck; 0: none)
    and recorded as a false alarm, a nondeterministic engine or a state-dependent disagreement, with its YAML;
    the search then goes on with a fresh seed to the budget. Past ``max_causes`` causes, a new one is reported
    as first found, neither shrunk nor re-checked.

    ``strategy`` defaults to entries() of ``layers`` and ``dtypes`` (see filters). ``seed`` None derandomizes
    the first hypothesis run (the same examples on every run, what the test suite uses); the runs after an
    alarm take fixed seeds, so that the whole search stays the same from run to run.
    """
    engines = list(engines)
    strategy = strategy if strategy is not None else entries(*filters(layers, dtypes))
    stats = Stats()
    firsts: dict[str, dict[str, Any]] = {}   # cause -> its first example (see _seen)
    start = time.perf_counter()
    for attempt in itertools.count():
        before = stats.tried
        found = _search_once(examples - stats.tried, engines, _attempt_seed(seed, attempt), strategy, stats,
                             firsts, len(stats.groups) < max_causes, examples if progress else 0, start)
        if "message" in found:
            _record(found, engines, stats, rechecks, progress)
        if "message" not in found or stats.tried >= examples or stats.tried == before:
            break
    _record_unshrunk(firsts, engines, stats, rechecks, progress, max_causes)
    stats.duration_s = time.perf_counter() - start
    return stats


def _attempt_seed(seed: int | None, attempt: int) -> int | None:
    """The hypothesis seed of a search's ``attempt``-th run: None (derandomized) for the first run of a
    derandomized search, a fixed seed for every other, so that each run draws new configurations."""
    if seed is None and attempt == 0:
        return None
    return (seed or 0) + 7919 * attempt


def _record(found: dict[str, Any], engines: list[str], stats: Stats, rechecks: int, progress: bool) -> None:
    """Re-check the example of a cause (``found``, see _search_once) and keep it as that cause's group."""
    if "last" not in found:   # hypothesis itself stopped before any configuration alarmed
        what = f"fuzzing stopped: {without_numbers(found['message'])}"   # hypothesis's exception, not a result
        stats.groups[what] = {"kind": "false_alarm", "text": f"{found['message']}\n(no example recorded)",
                              "size": size_of(None)}
        stats.alarms.setdefault(what, 1)
        return
    if progress and rechecks > 0:
        print(f"fuzz[{os.getpid()}]: re-checking a disagreement in {rechecks} fresh processes", file=sys.stderr)
    checked = recheck(found, engines, rechecks)
    stats.rechecks += checked.processes
    stats.groups[found["cause"]] = {"kind": checked.kind, "text": checked.text, "size": size_of(checked.entry)}


def _record_unshrunk(firsts: dict[str, dict[str, Any]], engines: list[str], stats: Stats, rechecks: int,
                     progress: bool, max_causes: int) -> None:
    """Record the causes the search counted but did not shrink, from their first example: one that came up
    only beside another cause (hypothesis shrinks one at a time; re-checked all the same), or one past
    ``max_causes`` (neither shrunk nor re-checked: each re-check costs fresh processes)."""
    for what, seen in firsts.items():
        if what in stats.groups:
            continue
        over = len(stats.groups) >= max_causes
        note = (f"neither shrunk nor re-checked: more than {max_causes} causes" if over else
                "not shrunk: it came up beside another cause")
        _record({"cause": what, "first": seen, "last": seen, "message": seen["message"], "note": note},
                engines, stats, 0 if over else rechecks, progress)


def _seen(entry: dict[str, Any], alarms: list[dict[str, str]], observed: dict[str, dict[str, Any]]
          ) -> dict[str, Any]:
    """One configuration's alarms of one cause, as recheck reads them: the configuration, the first message,
    the engines that alarmed, and what every engine computed."""
    return {"entry": entry, "message": alarms[0]["message"], "engines": [a["engine"] for a in alarms],
            "obs": observed}


def _search_once(examples: int, engines: list[str], seed: int | None, strategy: st.SearchStrategy,
                 stats: Stats, firsts: dict[str, dict[str, Any]], shrink: bool, progress_of: int, start: float
                 ) -> dict[str, Any]:
    """One hypothesis run: up to ``examples`` tries, counting every alarm under its cause in ``stats`` and
    keeping the first example of each cause in ``firsts``. With ``shrink``, the first alarm of a cause not yet
    recorded (``stats.groups``) stops the run, and hypothesis shrinks it to the smallest configuration that
    alarms with that same cause (another cause would shrink towards another bug). The result (empty where no
    new cause came up) holds the cause, its message, "first" (its first configuration) and "last" (the shrunk
    one), as _seen gives them."""
    found: dict[str, Any] = {}

    @settings(max_examples=examples, deadline=None, database=None, derandomize=seed is None,
              phases=(Phase.generate, Phase.shrink), suppress_health_check=list(HealthCheck),
              verbosity=Verbosity.quiet, print_blob=False)
    @given(entry=strategy)
    def probe(entry: dict[str, Any]) -> None:
        # Once a new cause is found, hypothesis replays smaller variants: those are not counted as tries.
        shrinking, before = "cause" in found, stats.tried
        alarms, observed = check(entry, engines, None if shrinking else stats)
        if progress_of and stats.tried != before and stats.tried % 500 == 0:
            rate = stats.tried / (time.perf_counter() - start)
            print(f"fuzz[{os.getpid()}]: {stats.tried}/{progress_of} configurations, {rate:.1f}/s", file=sys.stderr)
        by_cause: dict[str, list[dict[str, str]]] = {}
        for alarm in alarms:
            by_cause.setdefault(alarm["cause"], []).append(alarm)
        if not shrinking:
            for what, mine in by_cause.items():
                firsts.setdefault(what, _seen(entry, mine, observed))
            new = [what for what in by_cause if what not in stats.groups]
            if new and shrink:
                found.update(cause=new[0], first=firsts[new[0]])
        if "cause" in found and found["cause"] in by_cause:
            found["last"] = _seen(entry, by_cause[found["cause"]], observed)
            # One raise for every failure: hypothesis tells bugs apart by where they are raised, and would
            # take the first example and its shrunk replays for two bugs (a Flaky error) if they differed.
            raise FalseAlarm(found["cause"])

    if seed is not None:
        probe = hypothesis_seed(seed)(probe)
    try:
        probe()
    except FalseAlarm:
        pass
    except Exception as exc:  # noqa: BLE001 - e.g. hypothesis Flaky: still report what was found
        text = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        found.setdefault("message", text)
        if "last" in found:
            found["flaky"] = text[:300]
    if "last" in found:
        found["message"] = found["last"]["message"]
    return found


def _worker(examples: int, engines: list[str], seed: int, progress: bool, rechecks: int = RECHECKS,
            layers: list[str] | None = None, dtypes: list[str] | None = None) -> Stats:
    # One thread per framework in a worker: the workers already share out the cores, and tiny convolutions
    # run several times faster single-threaded (thread hand-off dominates them).
    engines = engine_names(engines)
    set_threads(dict.fromkeys(engines, 1))
    return search(examples, engines, seed, progress=progress, rechecks=rechecks, layers=layers, dtypes=dtypes)


def run(examples: int, engines: Iterable[str] = DEFAULT_ENGINES, seed: int = 0, jobs: int = 1,
        progress: bool = True, rechecks: int = RECHECKS, layers: Iterable[str] | None = None,
        dtypes: Iterable[str] | None = None) -> Stats:
    """The long run: ``examples`` configurations of ``layers`` and ``dtypes`` (default: all; see filters) split
    over ``jobs`` processes (seeds seed, seed+1, ...).

    Workers are fresh interpreters (``python -m harness.fuzz.search``), not forks: TensorFlow and torch do
    not survive a fork, and spawning through multiprocessing would re-run the CLI's unguarded __main__.
    Plug-in engines travel as NAME=MODULE:CALLABLE and are registered (resolved) in each worker, with this
    process's import path (child_env), so that a worker runs the same plug-ins as this process.
    """
    engines = list(engines)
    layers, dtypes = (list(names) for names in filters(layers, dtypes))   # an unknown name fails here, once
    start = time.perf_counter()
    if jobs <= 1:
        total = _worker(examples, engines, seed, progress, rechecks, layers, dtypes)
    else:
        specs = [engine_registry.cli_spec(e) for e in engines]
        shares = [examples // jobs + (1 if i < examples % jobs else 0) for i in range(jobs)]
        payloads = [{"examples": n, "engines": specs, "seed": seed + i, "progress": progress, "rechecks": rechecks,
                     "layers": layers, "dtypes": dtypes} for i, n in enumerate(shares) if n]
        env = child_env()
        procs = [subprocess.Popen([sys.executable, "-m", MODULE, json.dumps(payload)], stdout=subprocess.PIPE,
                                  text=True, env=env) for payload in payloads]
        total = Stats()
        try:
            for proc in procs:
                out, _ = proc.communicate()
                if proc.returncode != 0:
                    raise RuntimeError(f"fuzz worker exited with {proc.returncode} (its error is printed above)")
                total.merge(Stats(**json.loads(out.strip().splitlines()[-1])))
        finally:   # interrupted (Ctrl-C, SIGTERM unwinding through the CLI) or a job failed: no job outlives us
            stop(procs)
    total.duration_s, total.workers = time.perf_counter() - start, max(jobs, 1)
    return total


def _main(argv: list[str]) -> int:
    """A worker of run() (argv: its JSON payload) or a fresh process of replay() (``--replay`` PAYLOAD); its
    JSON result on the last line of stdout."""
    # A job of run(): SIGTERM from the parent (or the parent gone) ends its engine workers with it.
    end_workers_on((signal.SIGTERM, signal.SIGHUP), lambda signum: os._exit(128 + signum))
    end_with_parent()
    payload = json.loads(argv[-1])
    try:   # registered (resolved) first: a plug-in that does not resolve here is one line, not a traceback
        engine_names(payload["engines"])
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if argv[0] == "--replay":
        print(json.dumps(replay_main(argv[1])))
    else:
        print(json.dumps(dataclasses.asdict(_worker(**payload))))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
