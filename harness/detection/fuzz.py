"""Property-based fuzzing: hypothesis draws valid layer configurations; every engine must agree with the oracle.

A configuration a framework refuses is counted as rejected, apart from disagreements. A disagreement that a
registry entry explains (harness/known.py: its condition holds here and the configuration triggers it) is a true
alarm, counted by registry id. Any other disagreement (or an engine crash) is shrunk by hypothesis and then
re-checked in fresh interpreter processes before it is called a false alarm: output that changes from run to run
is a nondeterministic engine (a true bug), a disagreement no fresh process reproduces is state-dependent, and
one that reproduces deterministically is printed as a ready-to-paste YAML case.
"""
from __future__ import annotations

import base64
import hashlib
import itertools
import json
import os
import re
import subprocess
import sys
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np
from hypothesis import HealthCheck, Phase, Verbosity, given, settings, strategies as st
from hypothesis import seed as hypothesis_seed

from .. import engines as engine_registry
from ..engines import DEFAULT_ENGINES
from ..errors import CaseError
from ..known import REGISTRY, Known, matching_bug
from ..layers import ACTIVATIONS, LAYERS
from ..runner import Result, run_facts, run_one
from ..schema import Case, case_from_entry

# Shrinking goes to the first value of each list: the plainest configuration comes first.
DTYPES = ("float32", "float64", "float16", "bfloat16")
DATA_FORMATS = ("channels_last", "channels_first")
FUZZ_FILE = "fuzz.yaml"   # the file name a generated case carries (it appears in messages as [fuzz.yaml::id])
MAX_KERNEL, MAX_STRIDE, MAX_DILATION, MAX_CHANNELS, MAX_BATCH, MAX_EXTRA = 4, 3, 3, 5, 3, 7
_ids = itertools.count()
MODULE = "harness.detection.fuzz"   # what fresh processes run (__name__ is "__main__" in a worker)
RECHECKS = 3               # fresh interpreter processes that re-run a disagreement before it is called a false alarm
RECHECK_TIMEOUT_S = 600    # per fresh process (one configuration in every engine, imports included)
_MUTANT_NAMED = re.compile(r"diagnosis: matches the oracle with .*?\[mutant (\w+)\]")
_TAG = re.compile(r"\s*\[fuzz\.yaml::[^\]]*\]")


@st.composite
def entries(draw: st.DrawFn, layers: Iterable[str] = tuple(LAYERS), dtypes: Iterable[str] = DTYPES
            ) -> dict[str, Any]:
    """A YAML case entry (without id) for a valid configuration of bounded size."""
    layer = draw(st.sampled_from(tuple(layers)))
    kind = LAYERS[layer]
    rank = kind.rank

    def per_axis(high: int) -> int | list[int]:
        values = st.integers(1, high)
        return draw(values if rank == 1 else st.one_of(values, st.lists(values, min_size=rank, max_size=rank)))

    kernel, strides, dilation = per_axis(MAX_KERNEL), per_axis(MAX_STRIDE), per_axis(MAX_DILATION)
    padding = draw(st.sampled_from(kind.paddings))
    channels = draw(st.integers(1, MAX_CHANNELS))
    config: dict[str, Any] = {
        "kernel_size": kernel, "strides": strides, "dilation_rate": dilation, "padding": padding,
        "data_format": draw(st.sampled_from(DATA_FORMATS)),
        "activation": draw(st.sampled_from((None, *ACTIVATIONS))),
        "use_bias": draw(st.booleans()),
    }
    config.update(kind.family.fuzz_config(draw, st, channels, MAX_CHANNELS))   # groups, filters, multiplier
    spatial = []
    for axis in range(rank):
        k = kernel if isinstance(kernel, int) else kernel[axis]
        d = dilation if isinstance(dilation, int) else dilation[axis]
        low = (k - 1) * d + 1 if padding == "valid" else 1   # 'valid' needs the dilated kernel to fit
        spatial.append(draw(st.integers(low, low + MAX_EXTRA)))
    batch = draw(st.integers(1, MAX_BATCH))
    first = config["data_format"] == "channels_first"
    shape = [batch, channels, *spatial] if first else [batch, *spatial, channels]
    std = draw(st.sampled_from((1.0, 4.0)))   # 4: pre-activations past relu6's clip and sigmoid's flat parts
    return {"layer": layer, "input_shape": shape, "config": config, "dtype": draw(st.sampled_from(tuple(dtypes))),
            "seed": draw(st.integers(0, 2**16)), "input": {"init": "normal", "std": std}}


def to_case(entry: dict[str, Any], case_id: str | None = None) -> Case:
    """Validate an entry with the schema code (as if read from YAML) and return its Case."""
    case_id = case_id or f"fuzz-{os.getpid()}-{next(_ids)}"   # unique: the runner caches per (file, id)
    return case_from_entry(FUZZ_FILE, {"id": case_id, **entry})[0]


def to_yaml(entry: dict[str, Any], case_id: str) -> str:
    """A ready-to-paste YAML case (an item of a file's `cases:` list)."""
    import yaml

    def flow(value: Any) -> str:   # one line; safe_dump ends a bare scalar with a "..." document end
        return yaml.safe_dump(value, default_flow_style=True, width=10_000).replace("\n...", "").strip()

    lines = [f"  - id: {case_id}"]
    for key in ("layer", "input_shape", "config", "dtype", "seed", "input"):
        lines.append(f"    {key}: {flow(entry[key])}")
    return "\n".join(lines)


@dataclass
class Stats:
    """What a fuzz run saw (plain dicts: it crosses process boundaries)."""

    tried: int = 0
    invalid: int = 0                                                    # entries the schema refused
    runs: dict[str, int] = field(default_factory=dict)                  # "engine dtype" -> judged runs
    max_ratio: dict[str, float] = field(default_factory=dict)           # "engine dtype" -> largest error/bound
    worst: dict[str, str] = field(default_factory=dict)                 # "engine dtype" -> its configuration
    rejected: dict[str, int] = field(default_factory=dict)              # "engine: reason" -> count
    rejected_configs: int = 0                                           # configurations some engine refused
    skipped: dict[str, int] = field(default_factory=dict)               # "engine: reason" -> count
    known_bugs: dict[str, int] = field(default_factory=dict)            # "engine dtype: registry id" -> count
    known_example: dict[str, str] = field(default_factory=dict)         # registry id -> one configuration
    false_alarms: list[str] = field(default_factory=list)               # message + YAML, one per alarm
    nondeterministic: list[str] = field(default_factory=list)           # what changed between runs + YAML
    state_dependent: list[str] = field(default_factory=list)            # disagreed in the fuzzing process only
    rechecks: int = 0                                                   # fresh processes run to re-check alarms
    duration_s: float = 0.0
    workers: int = 1

    def merge(self, other: "Stats") -> None:
        self.tried += other.tried
        self.invalid += other.invalid
        self.rejected_configs += other.rejected_configs
        for key, v in other.runs.items():
            self.runs[key] = self.runs.get(key, 0) + v
        for key, v in other.max_ratio.items():
            if v >= self.max_ratio.get(key, -1.0):
                self.max_ratio[key], self.worst[key] = v, other.worst[key]
        for mine, theirs in ((self.rejected, other.rejected), (self.skipped, other.skipped),
                             (self.known_bugs, other.known_bugs)):
            for key, v in theirs.items():
                mine[key] = mine.get(key, 0) + v
        for key, v in other.known_example.items():
            self.known_example.setdefault(key, v)
        self.false_alarms.extend(other.false_alarms)
        self.nondeterministic.extend(other.nondeterministic)
        self.state_dependent.extend(other.state_dependent)
        self.rechecks += other.rechecks

    def findings(self) -> int:
        """Disagreements reported with a configuration: false alarms, nondeterministic, state-dependent."""
        return len(self.false_alarms) + len(self.nondeterministic) + len(self.state_dependent)


def _reason(message: str) -> str:
    """A refusal or skip reason without the configuration and numbers, so that alike ones count together."""
    text = message
    for sep in (") at call: ", "): "):   # drop "Keras refused Layer(args...)" before the framework's own words
        if "refused" in text and sep in text:
            text = text.split(sep, 1)[1]
            break
    text = re.sub(r"\[fuzz\.yaml::[^\]]*\]", "", text)
    text = re.sub(r"\{[^}]*\}", "{...}", text)   # sets print in any order
    return re.sub(r"\d+", "#", text.split("\n")[0])[:110].strip()


def check_entry(entry: dict[str, Any], engines: Iterable[str], stats: Stats | None = None) -> list[str]:
    """Run one configuration in every engine; return the alarms (fail or error verdicts no known bug explains)."""
    return [alarm["message"] for alarm in _check(entry, engines, stats)[0]]


def _check(entry: dict[str, Any], engines: Iterable[str], stats: Stats | None
           ) -> tuple[list[dict[str, str]], dict[str, dict[str, Any]]]:
    """check_entry's work: the alarms ({engine, message}) and, where there are any, what every engine computed
    (engine -> observation, see observe)."""
    try:
        case = to_case(entry)
    except CaseError:
        if stats is not None:
            stats.invalid += 1
        return [], {}
    alarms, refused, results = [], False, {}
    for engine in engines:
        r = run_one(case, engine)
        results[engine] = r
        key = f"{engine} {case.dtype}"
        bug = known_bug(case, r)
        if r.verdict in ("fail", "error") and bug is None:
            alarms.append({"engine": engine, "message": r.message})
        if stats is None:
            continue
        if bug is not None:
            stats.known_bugs[f"{key}: {bug.id}"] = stats.known_bugs.get(f"{key}: {bug.id}", 0) + 1
            example = f"{case.layer} {list(case.input_shape)} {case.dtype} {case.config}"
            stats.known_example.setdefault(bug.id, f"{example}: {_one_line(r.message)[:200]}")
        if r.verdict == "pass":
            stats.runs[key] = stats.runs.get(key, 0) + 1
            ratio = r.metrics.max_ratio if r.metrics else 0.0
            if ratio >= stats.max_ratio.get(key, -1.0):
                stats.max_ratio[key] = ratio
                stats.worst[key] = f"{case.layer} {list(case.input_shape)} {case.config}"
        elif r.verdict == "rejected":
            refused = True
            reason = f"{engine}: {case.layer}: {_reason(r.message)}"
            stats.rejected[reason] = stats.rejected.get(reason, 0) + 1
        elif r.verdict == "skip":
            reason = f"{engine}: {_reason(r.message)}"
            stats.skipped[reason] = stats.skipped.get(reason, 0) + 1
    if stats is not None:
        stats.tried += 1
        stats.rejected_configs += refused
    return alarms, ({engine: observe(r) for engine, r in results.items()} if alarms else {})


def known_bug(case: Case, result: Result) -> Known | None:
    """The registry entry (harness/known.py) that explains a failure of ``result.engine`` on ``case`` here: its
    condition holds for this process's facts and the run's own (``result.facts``: the kernel path, the layout
    the layer ran in), the configuration triggers it, and, where the entry names a mutant, the diagnosis in the
    failure message named that mutant first (its closest reproduction). Only wrong values (a fail) qualify."""
    if result.verdict != "fail":
        return None
    named = _MUTANT_NAMED.search(result.message)
    facts = run_facts(case, result)
    return matching_bug(result.engine, case, facts, named.group(1) if named else None)


def _one_line(message: str) -> str:
    return _TAG.sub("", message.split("\n")[0]).strip()


# ---- what an engine computed, comparable across processes -------------------------------------------------

def observe(result: Result) -> dict[str, Any]:
    """What one engine did on one configuration: verdict, message, output (float64) and its digest, the worst
    element and the oracle there, and the per-element bound it was judged with (this process only)."""
    y = None
    if result.output is not None:
        try:
            y = np.asarray(result.output.y).astype(np.float64)
        except (TypeError, ValueError):
            y = None
    m = result.metrics
    return {"verdict": result.verdict, "message": _one_line(result.message), "y": y, "digest": _digest(y),
            "worst": list(m.worst_index) if m else None, "oracle": m.worst_oracle if m else None,
            "bound": result.bound.bound if result.bound is not None else None}


def _digest(y: np.ndarray | None) -> str:
    if y is None:
        return "-"
    return hashlib.sha256(repr(y.shape).encode() + np.ascontiguousarray(y).tobytes()).hexdigest()[:10]


def _encode(obs: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in obs.items() if k not in ("y", "bound")}
    y = obs["y"]
    out["y"] = None if y is None else {"shape": list(y.shape), "data": base64.b64encode(
        zlib.compress(np.ascontiguousarray(y).tobytes())).decode("ascii")}
    return out


def _decode(obs: dict[str, Any]) -> dict[str, Any]:
    y = obs.get("y")
    if y is not None:
        y = np.frombuffer(zlib.decompress(base64.b64decode(y["data"])), dtype=np.float64).reshape(y["shape"])
    return {**obs, "y": y, "bound": None}


def _differs(a: dict[str, Any], b: dict[str, Any], bound: np.ndarray | None) -> bool:
    """Whether two observations of one engine on one configuration differ: another verdict, or (not passing)
    another shape, message or value; values count as different only beyond the error bound, so that a summation
    order that changed with the thread count is not taken for nondeterminism. Two passes never differ."""
    if a["verdict"] != b["verdict"]:
        return True
    if a["verdict"] == "pass":
        return False
    ya, yb = a["y"], b["y"]
    if ya is None or yb is None:
        return ya is not yb or a["message"] != b["message"]
    if ya.shape != yb.shape:
        return True
    same = (ya == yb) | (np.isnan(ya) & np.isnan(yb))
    if same.all():
        return False
    if bound is None or bound.shape != ya.shape:
        return True
    with np.errstate(invalid="ignore"):
        return bool(np.any(~same & ~(np.abs(ya - yb) <= bound)))


# ---- re-checking a disagreement in fresh processes --------------------------------------------------------

def replay(entry: dict[str, Any], engines: Iterable[str], runs: int = RECHECKS) -> list[dict[str, Any] | str]:
    """Run ``entry`` in every engine in ``runs`` fresh interpreter processes (as many at a time as there are
    cores), each with this process's environment (TF_ENABLE_ONEDNN_OPTS: the same TensorFlow kernel path),
    import path (plug-ins resolve) and thread counts. One item per process: engine -> observation, or why that
    process gave none."""
    engines = list(engines)
    payload = json.dumps({"entry": entry, "engines": [engine_registry.cli_spec(e) for e in engines],
                          "threads": _thread_counts(engines)})
    env = dict(os.environ)
    paths = [p or os.getcwd() for p in sys.path] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    command = [sys.executable, "-m", MODULE, "--replay", payload]
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
    return {engine: _decode(obs) for engine, obs in raw.items()}


def _replay_main(payload: str) -> dict[str, Any]:
    """One fresh process of replay: the configuration in every engine, observations as JSON-ready dicts."""
    spec = json.loads(payload)
    names = _engine_names(spec["engines"])
    _set_threads(spec.get("threads") or {})
    case = to_case(spec["entry"])
    return {name: _encode(observe(run_one(case, name))) for name in names}


def _engine_names(specs: Iterable[str]) -> list[str]:
    """Engine names from what a command line passes: built-in names, NAME=MODULE:CALLABLE plug-ins (registered
    here, so that a fresh process knows them)."""
    return [engine_registry.register_plugin(s) if ":" in s else s for s in specs]


def _thread_counts(engines: list[str]) -> dict[str, Any]:
    """The thread counts this process runs its frameworks with (engine -> its thread_count), for a fresh process
    to run the same."""
    counts = {name: engine_registry.engine_class(name).thread_count() for name in engines}
    return {name: count for name, count in counts.items() if count is not None}


def _set_threads(counts: dict[str, Any]) -> None:
    """Apply _thread_counts' answer (0: the framework's default), before the framework runs anything."""
    for name, count in counts.items():
        engine_registry.engine_class(name).set_threads(count)


def _assess(seen: dict[str, Any], fresh: list[dict[str, Any]]) -> tuple[list[str], bool, bool]:
    """A disagreement seen in this process (``seen``: entry, engines that alarmed, observations) against its
    fresh runs -> (engines whose output changed from run to run, reproduced in every fresh run, in any).

    Fresh runs that differ among themselves vary; so do fresh runs that all disagree again, but with other
    values than this process saw. Fresh runs that all pass alike do not vary: the disagreement did not repeat
    outside this process (state-dependent), which is not the same as nondeterminism."""
    here = seen["obs"]
    varying = [e for e, obs in here.items()
               if any(_differs(fresh[0][e], f[e], obs["bound"]) for f in fresh[1:] if e in f and e in fresh[0])]
    reproduced = [any(f.get(e, {}).get("verdict") in ("fail", "error") for e in seen["engines"]) for f in fresh]
    if all(reproduced) and not varying:
        varying = [e for e, obs in here.items() if any(e in f and _differs(obs, f[e], obs["bound"]) for f in fresh)]
    return varying, all(reproduced), any(reproduced)


def _changes(engine: str, seen: dict[str, Any], fresh: list[dict[str, Any]]) -> str:
    """One line: the values one engine gave at the element where its runs differ most, run by run."""
    from ..runner import reference

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


@dataclass
class Recheck:
    """What re-running a disagreement in fresh processes showed."""

    kind: str           # "false_alarm" | "nondeterministic" | "state_dependent"
    text: str           # what was seen, the message, and the configuration as a YAML case
    processes: int = 0  # fresh processes run


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
    note = f"  # hypothesis: {found['flaky']}\n" if found.get("flaky") else ""
    if runs <= 0:
        return Recheck("false_alarm", f"{last['message']}\n{note}{to_yaml(last['entry'], 'fuzz-shrunk')}")
    fresh = replay(last["entry"], engines, runs)
    broken = [r for r in fresh if isinstance(r, str)]
    if broken:
        return Recheck("false_alarm", f"{last['message']}\n  # not re-checked: {broken[0]}\n{note}"
                                      f"{to_yaml(last['entry'], 'fuzz-shrunk')}", runs)
    varying, everywhere, _ = _assess(last, fresh)
    if varying:
        return Recheck("nondeterministic", "\n".join([*(_changes(e, last, fresh) for e in varying), last["message"],
                                                      note + to_yaml(last["entry"], "fuzz-nondeterministic")]), runs)
    if everywhere:
        return Recheck("false_alarm", f"{last['message']}\n  # reproduced with the same values in {runs} fresh "
                                      f"processes\n{note}{to_yaml(last['entry'], 'fuzz-shrunk')}", runs)
    unshrunk = first["entry"] != last["entry"]
    processes = runs
    if unshrunk:
        fresh_first = replay(first["entry"], engines, runs)
        processes += runs
        broken = [r for r in fresh_first if isinstance(r, str)]
        if broken:   # conservative: an alarm that could not be re-checked stays an alarm
            return Recheck("false_alarm", (
                f"{first['message']}\n  # the shrunk configuration passed in {runs} fresh processes; this first, "
                f"unshrunk one could not be re-checked: {broken[0]}\n"
                f"{note}{to_yaml(first['entry'], 'fuzz-unshrunk')}"), processes)
        varying, everywhere, _ = _assess(first, fresh_first)
        if varying:
            return Recheck("nondeterministic", "\n".join(
                [*(_changes(e, first, fresh_first) for e in varying), first["message"],
                 f"  # the shrunk configuration passed in {runs} fresh processes; this is the first one found",
                 note + to_yaml(first["entry"], "fuzz-nondeterministic")]), processes)
        if everywhere:
            return Recheck("false_alarm", (
                f"{first['message']}\n  # the shrunk configuration passed in {runs} fresh processes; this is "
                f"the first, unshrunk configuration found, which reproduced with the same values in {runs}\n"
                f"{note}{to_yaml(first['entry'], 'fuzz-unshrunk')}"), processes)
    which = "the shrunk and the first (unshrunk) configuration" if unshrunk else "the configuration"
    text = (f"state-dependent: disagreed in the fuzzing process only; {which} passed in {runs} fresh processes "
            f"each: {last['message']}\n{note}{to_yaml(last['entry'], 'fuzz-state-dependent')}")
    if unshrunk:
        text += f"\n  # first found, unshrunk:\n{to_yaml(first['entry'], 'fuzz-state-dependent-unshrunk')}"
    return Recheck("state_dependent", text, processes)


class FalseAlarm(AssertionError):
    """A valid configuration on which an engine disagreed with the oracle (or crashed)."""


def search(examples: int, engines: Iterable[str] = DEFAULT_ENGINES, seed: int | None = 0,
           strategy: st.SearchStrategy | None = None, progress: bool = False, max_alarms: int = 5,
           rechecks: int = RECHECKS) -> Stats:
    """Try ``examples`` configurations in every engine. A disagreement no registry entry explains is shrunk by
    hypothesis, re-checked in ``rechecks`` fresh processes (recheck; 0: none) and recorded as a false alarm, a
    nondeterministic engine or a state-dependent disagreement, with its YAML; the search then goes on with a
    fresh seed, up to ``max_alarms`` of them.

    ``seed`` None derandomizes (the same examples on every run, what the test suite uses); it stops at the
    first alarm, since a rerun would find the same one.
    """
    engines = list(engines)
    stats = Stats()
    start = time.perf_counter()
    for attempt in itertools.count():
        found = _search_once(examples - stats.tried, engines, None if seed is None else seed + 7919 * attempt,
                             strategy, stats, examples if progress else 0, start)
        if "message" in found:
            _record(found, engines, stats, rechecks, progress)
        if ("message" not in found or seed is None or stats.tried >= examples
                or stats.findings() >= max_alarms):
            break
    stats.duration_s = time.perf_counter() - start
    return stats


def _record(found: dict[str, Any], engines: list[str], stats: Stats, rechecks: int, progress: bool) -> None:
    if "last" not in found:
        stats.false_alarms.append(f"{found['message']}\n(no example recorded)")
        return
    if progress and rechecks > 0:
        print(f"fuzz[{os.getpid()}]: re-checking a disagreement in {rechecks} fresh processes", file=sys.stderr)
    checked = recheck(found, engines, rechecks)
    stats.rechecks += checked.processes
    {"false_alarm": stats.false_alarms, "nondeterministic": stats.nondeterministic,
     "state_dependent": stats.state_dependent}[checked.kind].append(checked.text)


def _search_once(examples: int, engines: list[str], seed: int | None, strategy: st.SearchStrategy | None,
                 stats: Stats, progress_of: int, start: float) -> dict[str, Any]:
    """One hypothesis run: up to ``examples`` tries, stopping at the first alarm (shrunk). The result holds the
    alarm's message, "first" (the first configuration that alarmed) and "last" (the shrunk one), each with the
    engines that alarmed and what every engine computed."""
    found: dict[str, Any] = {}

    @settings(max_examples=examples, deadline=None, database=None, derandomize=seed is None,
              phases=(Phase.generate, Phase.shrink), suppress_health_check=list(HealthCheck),
              verbosity=Verbosity.quiet, print_blob=False)
    @given(entry=strategy if strategy is not None else entries())
    def probe(entry: dict[str, Any]) -> None:
        # Once an alarm is found, hypothesis replays smaller variants: those are not counted as tries.
        before = stats.tried
        alarms, observed = _check(entry, engines, None if found else stats)
        if progress_of and stats.tried != before and stats.tried % 500 == 0:
            rate = stats.tried / (time.perf_counter() - start)
            print(f"fuzz[{os.getpid()}]: {stats.tried}/{progress_of} configurations, {rate:.1f}/s", file=sys.stderr)
        if alarms:
            seen = {"entry": entry, "message": alarms[0]["message"], "engines": [a["engine"] for a in alarms],
                    "obs": observed}
            found.setdefault("first", seen)
            found["last"], found["entry"], found["message"] = seen, entry, seen["message"]
            raise FalseAlarm(seen["message"])

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
    return found


def _worker(examples: int, engines: list[str], seed: int, progress: bool, rechecks: int = RECHECKS) -> Stats:
    # One thread per framework in a worker: the workers already share out the cores, and tiny convolutions
    # run several times faster single-threaded (thread hand-off dominates them).
    engines = _engine_names(engines)
    _set_threads({name: 1 for name in engines})
    return search(examples, engines, seed, progress=progress, rechecks=rechecks)


def run(examples: int, engines: Iterable[str] = DEFAULT_ENGINES, seed: int = 0, jobs: int = 1,
        progress: bool = True, rechecks: int = RECHECKS) -> Stats:
    """The long run: ``examples`` configurations split over ``jobs`` processes (seeds seed, seed+1, ...).

    Workers are fresh interpreters (``python -m harness.detection.fuzz``), not forks: TensorFlow and torch do
    not survive a fork, and spawning through multiprocessing would re-run the CLI's unguarded __main__.
    Plug-in engines travel as NAME=MODULE:CALLABLE.
    """
    engines = list(engines)
    start = time.perf_counter()
    if jobs <= 1:
        total = _worker(examples, engines, seed, progress, rechecks)
    else:
        specs = [engine_registry.cli_spec(e) for e in engines]
        shares = [examples // jobs + (1 if i < examples % jobs else 0) for i in range(jobs)]
        procs = [subprocess.Popen([sys.executable, "-m", MODULE, json.dumps([n, specs, seed + i, progress,
                                                                             rechecks])],
                                  stdout=subprocess.PIPE, text=True)
                 for i, n in enumerate(shares) if n]
        total = Stats()
        for proc in procs:
            out, _ = proc.communicate()
            if proc.returncode != 0:
                raise RuntimeError(f"fuzz worker exited with {proc.returncode}")
            total.merge(Stats(**json.loads(out.strip().splitlines()[-1])))
    total.duration_s, total.workers = time.perf_counter() - start, max(jobs, 1)
    return total


def format_stats(s: Stats) -> str:
    lines = [f"fuzz: {s.tried} configurations tried in {s.duration_s:.0f} s "
             f"({s.tried / max(s.duration_s, 1e-9):.1f}/s, {s.workers} worker(s)); "
             f"{s.invalid} refused by the schema (a strategy bug if not 0)",
             f"configurations some framework rejected: {s.rejected_configs} (counted apart, not disagreements)",
             "largest error/bound per engine and dtype (1 is the bound):"]
    for key in sorted(s.max_ratio):
        lines.append(f"  {key:<18} {s.max_ratio[key]:8.3g}   over {s.runs.get(key, 0):6d} passing runs;"
                     f" worst: {s.worst[key]}")
    if s.rejected:
        lines.append("rejected (engine: layer: reason: count):")
        lines += [f"  {k}: {v}" for k, v in sorted(s.rejected.items(), key=lambda kv: -kv[1])]
    if s.skipped:
        lines.append("skipped (engine: reason: count):")
        lines += [f"  {k}: {v}" for k, v in sorted(s.skipped.items(), key=lambda kv: -kv[1])[:12]]
    if s.known_bugs:
        lines.append("true alarms: known framework bugs, by registry id (harness/known.py; not false alarms, the "
                     "run goes on):")
        lines += [f"  {k}: {v}" for k, v in sorted(s.known_bugs.items())]
        for bug_id, example in s.known_example.items():
            entry = REGISTRY.get(bug_id)
            lines.append(f"  {bug_id}: {entry.summary if entry else '(not in this registry)'}")
            lines.append(f"    e.g. {example}")
    if s.rechecks:
        lines.append(f"disagreements re-checked in {s.rechecks} fresh interpreter processes")
    lines.append(f"nondeterministic engine output: {len(s.nondeterministic)}"
                 + (" (true bugs of that engine, in no registry entry: values change from run to run)"
                    if s.nondeterministic else ""))
    lines += s.nondeterministic
    lines.append(f"state-dependent: {len(s.state_dependent)}"
                 + (" (disagreed in the fuzzing process only, never in a fresh one; not counted as false alarms)"
                    if s.state_dependent else ""))
    lines += s.state_dependent
    lines.append(f"false alarms: {len(s.false_alarms)}" + (
        " (expected 0; each shrunk by hypothesis, reproduced in fresh processes, as a YAML case below)"
        if s.false_alarms else " (expected 0)"))
    for alarm in s.false_alarms:
        lines.append(alarm)
    return "\n".join(lines)


if __name__ == "__main__":   # a worker of run() or a fresh process of replay(); a JSON result on the last line
    import dataclasses

    from .diagnose import install

    install()

    if sys.argv[1] == "--replay":
        print(json.dumps(_replay_main(sys.argv[2])))
    else:
        _n, _engines, _seed, _progress, *_more = json.loads(sys.argv[1])
        print(json.dumps(dataclasses.asdict(_worker(_n, _engines, _seed, _progress, *_more))))
