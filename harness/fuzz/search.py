"""Property-based fuzzing: hypothesis draws valid layer configurations; every engine must agree with the oracle.

A configuration a framework refuses is counted as rejected, apart from disagreements. A disagreement that a
registry entry explains (harness/known/registry.py: its condition holds here and the configuration triggers it) is a true
alarm, counted by registry id. Any other disagreement (or an engine crash) is shrunk by hypothesis and then
re-checked in fresh interpreter processes before it is called a false alarm: output that changes from run to run
is a nondeterministic engine (a true bug), a disagreement no fresh process reproduces is state-dependent, and
one that reproduces deterministically is printed as a ready-to-paste YAML case.

Alarms are grouped by cause (the first finding of the diagnosis, else the check that failed or the error type): the
search goes on to its budget, counting every alarm under its cause, and shrinks and re-checks one example per
cause, the smallest it can find.
"""
from __future__ import annotations

import base64
import difflib
import hashlib
import math
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
from ..judge.findings import first
from ..known.registry import REGISTRY, Known, matching_bug
from ..layers.geometry import ACTIVATIONS, LAYERS
from ..judge.diagnoser import Diagnoser
from ..judge.runner import Result, item_label, reference, run_facts, run_one
from ..cases.schema import Case, case_from_entry
from ..cases.sharding import check_complete
from ..diagnosis.causes import label
from ..diagnosis.diagnose import Diagnoser as CatalogueDiagnoser

# Shrinking goes to the first value of each list: the plainest configuration comes first.
DTYPES = ("float32", "float64", "float16", "bfloat16")
DATA_FORMATS = ("channels_last", "channels_first")
FUZZ_FILE = "fuzz.yaml"   # the file name a generated case carries (it appears in messages as [fuzz.yaml::id])
MAX_KERNEL, MAX_STRIDE, MAX_DILATION, MAX_CHANNELS, MAX_BATCH, MAX_EXTRA = 4, 3, 3, 5, 3, 7
_ids = itertools.count()
MODULE = "harness.fuzz.search"   # what fresh processes run (__name__ is "__main__" in a worker)
RECHECKS = 3               # fresh interpreter processes that re-run a disagreement before it is called a false alarm
RECHECK_TIMEOUT_S = 600    # per fresh process (one configuration in every engine, imports included)
MAX_CAUSES = 20            # causes shrunk and re-checked per search; beyond, a cause is reported as first found
# What a re-check makes of a cause, the surest first: where workers disagree on a cause, the surest one is kept.
KINDS = ("false_alarm", "nondeterministic", "state_dependent")
# Alarms are grouped by their diagnosis: every configuration is diagnosed (the mutant catalogue's Diagnoser).
DIAGNOSER = CatalogueDiagnoser()


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
    # The backward check too, in half the configurations (forward alone shrinks first: a backward alarm keeps it).
    check = draw(st.sampled_from((["forward"], ["forward", "backward"])))
    return {"layer": layer, "input_shape": shape, "config": config, "dtype": draw(st.sampled_from(tuple(dtypes))),
            "seed": draw(st.integers(0, 2**16)), "input": {"init": "normal", "std": std}, "check": check}


def run_checks(case: Case, engines: Iterable[str], diagnoser: Diagnoser | None = DIAGNOSER) -> dict[str, Result]:
    """Every engine's result on every check the case asks for, by item label (runner.item_label), forward first;
    failures diagnosed by ``diagnoser`` (their findings are what alarms are grouped by)."""
    return {item_label(engine, check): run_one(case, engine, check, diagnoser)
            for check in case.check for engine in engines}


def choose(option: str, what: str, names: Iterable[str] | None, known: Iterable[str]) -> tuple[str, ...]:
    """The values a repeatable filter (``--layer``, ``--dtype``) keeps, in ``known``'s order (shrinking goes to
    the first); all of ``known`` where none is given. An unknown value is a ValueError that lists the known
    ones: a typo must not fuzz nothing, nor everything."""
    known, names = tuple(known), list(names or [])
    unknown = [n for n in names if n not in known]
    if unknown:
        close = difflib.get_close_matches(unknown[0], known, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ValueError(f"{option} {unknown[0]}: no such {what}{hint}; known: {', '.join(known)}")
    return tuple(k for k in known if k in names) or known


def filters(layers: Iterable[str] | None = None, dtypes: Iterable[str] | None = None
            ) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``--layer`` and ``--dtype`` values -> the layer kinds and dtypes entries() draws from (see choose)."""
    return choose("--layer", "layer kind", layers, LAYERS), choose("--dtype", "dtype", dtypes, DTYPES)


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
    alarms: dict[str, int] = field(default_factory=dict)                # cause -> configurations it alarmed on
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)     # cause -> {kind, text, size}: its
    #   smallest example as re-checked (kind: one of KINDS; text: message + YAML; size: see _size)
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
        for cause, n in other.alarms.items():
            self.alarms[cause] = self.alarms.get(cause, 0) + n
        for cause, group in other.groups.items():   # two workers found one cause: the surest, smallest example
            if cause not in self.groups or _rank(group) < _rank(self.groups[cause]):
                self.groups[cause] = group
        self.rechecks += other.rechecks

    def causes(self, kind: str) -> list[str]:
        """The causes whose re-check made them ``kind`` (one of KINDS), the most frequent first."""
        mine = [c for c, g in self.groups.items() if g["kind"] == kind]
        return sorted(mine, key=lambda c: (-self.alarms.get(c, 0), c))

    def alarm_count(self, kind: str) -> int:
        """Alarms (configurations) of the causes that are ``kind``."""
        return sum(self.alarms.get(c, 1) for c in self.causes(kind))

    @property
    def false_alarms(self) -> list[str]:
        """One text (message + YAML case) per cause that reproduced deterministically: expected none."""
        return [self.groups[c]["text"] for c in self.causes("false_alarm")]

    @property
    def nondeterministic(self) -> list[str]:
        """One text per cause whose output changed between runs (what changed + YAML)."""
        return [self.groups[c]["text"] for c in self.causes("nondeterministic")]

    @property
    def state_dependent(self) -> list[str]:
        """One text per cause that disagreed in the fuzzing process only."""
        return [self.groups[c]["text"] for c in self.causes("state_dependent")]

    def findings(self) -> int:
        """Distinct causes reported with a configuration: false alarms, nondeterministic, state-dependent."""
        return len(self.groups)


def _rank(group: dict[str, Any]) -> tuple[int, list[int]]:
    return KINDS.index(group["kind"]), list(group["size"])


def _size(entry: dict[str, Any] | None) -> list[int]:
    """How big an example is, to keep the smallest: input elements, then the length of its description."""
    if entry is None:
        return [0, 0]
    return [math.prod(entry.get("input_shape") or [0]), len(json.dumps(entry, sort_keys=True, default=str))]


# ---- what alarms are grouped by ----------------------------------------------------------------------------

def cause(engine: str, result: Result) -> str:
    """What alarms are grouped by: the engine (an item label) and the cause label of the result's fields
    (harness.diagnosis.causes.label): its first (closest) finding's kind and id, else the check that failed, else
    the error type. Stable across configurations and wording: one mistake seen in many configurations is one
    cause, and rewording a finding's sentence moves no alarm. (Later findings, such as which axis a wrong shape
    differs in, vary with the configuration.)"""
    return f"{engine}: {label(result.verdict, result)}"[:240]


_DIGITS = re.compile(r"\d+(?:\.\d+)?")


def _without_numbers(text: str) -> str:
    """An exception's text (hypothesis's own, when it stops a search) without its numbers, one line."""
    return _DIGITS.sub("#", text.split("\n")[0]).strip()


def _reason(result: Result) -> str:
    """A refusal or skip reason without the configuration and numbers, so that alike ones count together: the
    harness's own reasons are fixed sentences (Result.reason_id); an engine's words (its exception text) lose the
    layer it echoes and their numbers."""
    text = result.reason.split("\n")[0]
    if result.reason_id not in ("engine-skip", "engine-refusal"):
        return text[:110]
    for sep in (") at call: ", "): "):   # drop "Keras refused Layer(args...)" before the framework's own words
        if "refused" in text and sep in text:
            text = text.split(sep, 1)[1]
            break
    text = re.sub(r"\{[^}]*\}", "{...}", text)   # sets print in any order
    return re.sub(r"\d+", "#", text)[:110].strip()


def check_entry(entry: dict[str, Any], engines: Iterable[str], stats: Stats | None = None) -> list[str]:
    """Run one configuration in every engine; return the alarms (fail or error verdicts no known bug explains)."""
    return [alarm["message"] for alarm in _check(entry, engines, stats)[0]]


def _check(entry: dict[str, Any], engines: Iterable[str], stats: Stats | None
           ) -> tuple[list[dict[str, str]], dict[str, dict[str, Any]]]:
    """check_entry's work: the alarms ({engine, message, cause}) and, where there are any, what every engine
    computed (engine -> observation, see observe). ``stats`` counts the configuration once under each cause."""
    try:
        case = to_case(entry)
    except CaseError:
        if stats is not None:
            stats.invalid += 1
        return [], {}
    alarms, refused = [], False
    results = run_checks(case, engines)
    for engine, r in results.items():   # engine: a label, ENGINE or ENGINE:backward
        key = f"{engine} {case.dtype}"
        bug = known_bug(case, r)
        if bug is None and r.check != "forward" and r.verdict == "fail":
            # Gradients of a layer whose forward has a known bug here carry it (the bias bug moves dbias).
            forward = results.get(r.engine)
            bug = known_bug(case, forward) if forward is not None else None
        if r.verdict in ("fail", "error") and bug is None:
            alarms.append({"engine": engine, "message": r.message, "cause": cause(engine, r)})
        if stats is None:
            continue
        if bug is not None:
            stats.known_bugs[f"{key}: {bug.id}"] = stats.known_bugs.get(f"{key}: {bug.id}", 0) + 1
            example = f"{case.layer} {list(case.input_shape)} {case.dtype} {case.config}"
            stats.known_example.setdefault(bug.id, f"{example}: {_one_line(r)[:200]}")
        if r.verdict == "pass":
            stats.runs[key] = stats.runs.get(key, 0) + 1
            ratio = r.metrics.max_ratio if r.metrics else 0.0
            if ratio >= stats.max_ratio.get(key, -1.0):
                stats.max_ratio[key] = ratio
                stats.worst[key] = f"{case.layer} {list(case.input_shape)} {case.config}"
        elif r.verdict == "rejected":
            refused = True
            reason = f"{engine}: {case.layer}: {_reason(r)}"
            stats.rejected[reason] = stats.rejected.get(reason, 0) + 1
        elif r.verdict == "skip":
            reason = f"{engine}: {_reason(r)}"
            stats.skipped[reason] = stats.skipped.get(reason, 0) + 1
    if stats is not None:
        stats.tried += 1
        stats.rejected_configs += refused
        for c in dict.fromkeys(a["cause"] for a in alarms):
            stats.alarms[c] = stats.alarms.get(c, 0) + 1
    return alarms, ({engine: observe(r) for engine, r in results.items()} if alarms else {})


def known_bug(case: Case, result: Result) -> Known | None:
    """The registry entry (harness/known/registry.py) that explains a failure of ``result.engine`` on ``case`` here: its
    condition holds for this process's facts and the run's own (``result.facts``: the kernel path, the layout
    the layer ran in), the configuration triggers it, and, where the entry names a mutant, the diagnosis named
    that mutant first (the first mutant finding: its closest reproduction). Only wrong values (a fail) qualify."""
    if result.verdict != "fail":
        return None
    named = first(result.findings, "mutant")
    facts = run_facts(case, result)
    return matching_bug(result.engine, case, facts, named.id if named is not None else None)


def _one_line(result: Result) -> str:
    """The message's first line for a person, without its [fuzz.yaml::ID] tag (an id no printed case has)."""
    return result.message.split("\n")[0].replace(f" [{FUZZ_FILE}::{result.case_id}]", "").strip()


# ---- what an engine computed, comparable across processes -------------------------------------------------

def observe(result: Result) -> dict[str, Any]:
    """What one engine did on one configuration: verdict, what decided it (the check, the findings' keys, an
    error's type and words), output (float64) and its digest, the worst element and the oracle there, and the
    per-element bound it was judged with (this process only)."""
    y = None
    if result.output is not None:
        # backward: the gradient tensor the verdict is about (result.tensor), where its metrics point
        value = result.output.y if result.check == "forward" else (result.output.gradients or {}).get(result.tensor)
        try:
            y = None if value is None else np.asarray(value).astype(np.float64)
        except (TypeError, ValueError):
            y = None
    m = result.metrics
    about = [result.decided_by, *(f.key for f in result.findings), result.error_type, result.reason]
    return {"verdict": result.verdict, "about": about, "y": y, "digest": _digest(y),
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
    another shape, value, or (without an output) another check, finding or error; values count as different only beyond the error bound, so that a summation
    order that changed with the thread count is not taken for nondeterminism. Two passes never differ."""
    if a["verdict"] != b["verdict"]:
        return True
    if a["verdict"] == "pass":
        return False
    ya, yb = a["y"], b["y"]
    if ya is None or yb is None:
        return ya is not yb or list(a["about"]) != list(b["about"])
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
    command, env = [sys.executable, "-m", MODULE, "--replay", payload], child_env()
    with ThreadPoolExecutor(max_workers=max(1, min(runs, os.cpu_count() or 1))) as pool:
        return list(pool.map(lambda _: _replay_once(command, env), range(runs)))


def child_env() -> dict[str, str]:
    """This process's environment for a fresh interpreter (a fuzz worker, a replay), with this process's import
    path as PYTHONPATH: a plug-in whose module is found here through sys.path (a folder that pytest or a script
    put there, not the current directory) is found there too, rather than failing as an engine error in every
    configuration, which the fuzzer would report as false alarms."""
    env = dict(os.environ)
    paths = [p or os.getcwd() for p in sys.path] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


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
    return {name: _encode(observe(r)) for name, r in run_checks(case, names).items()}


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
    fresh = replay(last["entry"], engines, runs)
    broken = [r for r in fresh if isinstance(r, str)]
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
        fresh_first = replay(first["entry"], engines, runs)
        processes += runs
        broken = [r for r in fresh_first if isinstance(r, str)]
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
    stats, firsts = Stats(), {}
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
        what = f"fuzzing stopped: {_without_numbers(found['message'])}"   # hypothesis's exception, not a result
        stats.groups[what] = {"kind": "false_alarm", "text": f"{found['message']}\n(no example recorded)",
                              "size": _size(None)}
        stats.alarms.setdefault(what, 1)
        return
    if progress and rechecks > 0:
        print(f"fuzz[{os.getpid()}]: re-checking a disagreement in {rechecks} fresh processes", file=sys.stderr)
    checked = recheck(found, engines, rechecks)
    stats.rechecks += checked.processes
    stats.groups[found["cause"]] = {"kind": checked.kind, "text": checked.text, "size": _size(checked.entry)}


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
        alarms, observed = _check(entry, engines, None if shrinking else stats)
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
    engines = _engine_names(engines)
    _set_threads({name: 1 for name in engines})
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
            _stop(procs)
    total.duration_s, total.workers = time.perf_counter() - start, max(jobs, 1)
    return total


# ---- shards of a campaign: `fuzz --shard I/N --out FILE`, then `fuzz --merge FILE...` ---------------------------

# Shard I's workers start at seed + (I - 1) * SHARD_SEED_STRIDE (worker j: + j, as in run()); a worker's later
# hypothesis runs add 7919 per run (_attempt_seed), at most MAX_CAUSES + 1 runs, so every seed of one shard lies in
# [start, start + jobs + 7919 * (MAX_CAUSES + 1)): well inside the stride, and shards never share a seed.
SHARD_SEED_STRIDE = 1 << 20
SUMMARY_FORMAT = "conv-equivalence-harness fuzz summary"
SUMMARY_VERSION = 1


def shard_budget(examples: int, index: int, count: int) -> int:
    """Shard ``index``'s (1-based) share of ``examples``: equal shares, the first shards one more."""
    return examples // count + (1 if index - 1 < examples % count else 0)


def shard_seed(seed: int, index: int) -> int:
    """The first hypothesis seed of shard ``index`` (1-based) of a campaign whose base seed is ``seed``."""
    return seed + (index - 1) * SHARD_SEED_STRIDE


def summary(stats: Stats, *, examples: int, seed: int, shard: tuple[int, int] | None, jobs: int,
            engines: Iterable[str], layers: Iterable[str], dtypes: Iterable[str]) -> dict[str, Any]:
    """What `fuzz --out FILE` writes: the campaign (its whole budget and base seed), this shard, and its Stats."""
    import dataclasses

    index, count = shard or (1, 1)
    return {"format": SUMMARY_FORMAT, "version": SUMMARY_VERSION,
            "shard": {"index": index, "count": count}, "examples_total": examples, "seed": seed,
            "examples": shard_budget(examples, index, count), "first_seed": shard_seed(seed, index), "jobs": jobs,
            "engines": [engine_registry.cli_spec(e) for e in engines], "layers": list(layers),
            "dtypes": list(dtypes), "stats": dataclasses.asdict(stats)}


def load_summary(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read fuzz summary {path}: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("format") != SUMMARY_FORMAT or doc.get("version") != SUMMARY_VERSION:
        raise ValueError(f"{path}: not a fuzz summary of version {SUMMARY_VERSION} (written by `python -m harness "
                         "fuzz --out FILE`)")
    return doc


def merge_summaries(paths: list[str]) -> tuple[Stats, list[dict[str, Any]]]:
    """The Stats of a whole campaign from its shards' summaries (taken in shard order, so the merge is the same
    whatever the order of ``paths``), and the summaries. ValueError where a shard is missing or given twice, or
    where they are not shards of one campaign (another budget, base seed, engines, layer kinds or dtypes)."""
    if not paths:
        raise ValueError("--merge: no fuzz summaries given")
    docs = sorted(((p, load_summary(p)) for p in paths), key=lambda pd: pd[1]["shard"]["index"])
    first_path, first = docs[0]
    count = first["shard"]["count"]
    for path, doc in docs[1:]:
        for key in ("examples_total", "seed", "engines", "layers", "dtypes"):
            if doc.get(key) != first.get(key):
                raise ValueError(f"{path} and {first_path} differ in {key} ({doc.get(key)!r} vs {first.get(key)!r}):"
                                 " not shards of one campaign")
        if doc["shard"]["count"] != count:
            raise ValueError(f"{path} is a shard of {doc['shard']['count']}, {first_path} of {count}")
    indices = [doc["shard"]["index"] for _, doc in docs]
    check_complete(indices, count)
    total = Stats()
    for _, doc in docs:
        total.merge(Stats(**doc["stats"]))
    # The shards ran side by side: the campaign took as long as its longest shard, on all their workers.
    total.duration_s = max(float(doc["stats"].get("duration_s", 0.0)) for _, doc in docs)
    total.workers = sum(int(doc["stats"].get("workers", 1)) for _, doc in docs)
    return total, [doc for _, doc in docs]


def _counted(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


# How format_stats heads each kind of finding: its title, and what it means where there are any.
_TITLES = {
    "nondeterministic": ("nondeterministic engine output",
                         "true bugs of that engine, in no registry entry: values change from run to run"),
    "state_dependent": ("state-dependent",
                        "disagreed in the fuzzing process only, never in a fresh one; not counted as false alarms"),
    "false_alarm": ("false alarms", "expected 0; per cause, its smallest example, shrunk by hypothesis and "
                                    "reproduced in fresh processes, as a YAML case below"),
}


def _format_causes(s: Stats) -> list[str]:
    """The summary of alarms by cause: how many distinct causes, and per cause its alarms and its kind."""
    if not s.groups:
        return []
    alarms = sum(s.alarms.get(c, 1) for c in s.groups)
    lines = [f"alarms by cause (configurations on which an engine disagreed or crashed, known bugs apart): "
             f"{_counted(len(s.groups), 'distinct cause')}, {_counted(alarms, 'alarm')}"]
    for kind in KINDS:
        label = _TITLES[kind][0].removesuffix("s")
        lines += [f"  {s.alarms.get(c, 1):6d}  {label}: {c}" for c in s.causes(kind)]
    return lines


def _format_kind(s: Stats, kind: str) -> list[str]:
    """One kind of finding: its count line, then per cause its alarms and its smallest example."""
    title, meaning = _TITLES[kind]
    causes = s.causes(kind)
    if not causes:
        return [f"{title}: 0" + (" (expected 0)" if kind == "false_alarm" else "")]
    lines = [f"{title}: {_counted(s.alarm_count(kind), 'alarm')} of {_counted(len(causes), 'distinct cause')} "
             f"({meaning})"]
    for c in causes:
        lines.append(f"cause: {c} ({_counted(s.alarms.get(c, 1), 'alarm')}); the smallest example:")
        lines.append(s.groups[c]["text"])
    return lines


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
        lines.append("true alarms: known framework bugs, by registry id (harness/known/registry.py; not false alarms, the "
                     "run goes on):")
        lines += [f"  {k}: {v}" for k, v in sorted(s.known_bugs.items())]
        for bug_id, example in s.known_example.items():
            entry = REGISTRY.get(bug_id)
            lines.append(f"  {bug_id}: {entry.summary if entry else '(not in this registry)'}")
            lines.append(f"    e.g. {example}")
    if s.rechecks:
        lines.append(f"disagreements re-checked in {s.rechecks} fresh interpreter processes")
    lines += _format_causes(s)
    for kind in ("nondeterministic", "state_dependent", "false_alarm"):   # false alarms last: the verdict
        lines += _format_kind(s, kind)
    return "\n".join(lines)


def _stop(procs: list[subprocess.Popen]) -> None:
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


def _main(argv: list[str]) -> int:
    """A worker of run() (argv: its JSON payload) or a fresh process of replay() (``--replay`` PAYLOAD); its
    JSON result on the last line of stdout."""
    import dataclasses
    import signal

    from ..engines.worker import end_with_parent, end_workers_on

    # A job of run(): SIGTERM from the parent (or the parent gone) ends its engine workers with it.
    end_workers_on((signal.SIGTERM, signal.SIGHUP), lambda signum: os._exit(128 + signum))
    end_with_parent()
    payload = json.loads(argv[-1])
    try:   # registered (resolved) first: a plug-in that does not resolve here is one line, not a traceback
        _engine_names(payload["engines"])
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if argv[0] == "--replay":
        print(json.dumps(_replay_main(argv[1])))
    else:
        print(json.dumps(dataclasses.asdict(_worker(**payload))))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
