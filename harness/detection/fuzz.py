"""Property-based fuzzing: hypothesis draws valid layer configurations; every engine must agree with the oracle.

A configuration a framework refuses is counted as rejected, apart from disagreements. A disagreement (or an
engine crash) on a valid configuration is a false alarm of the harness or a bug in an engine: hypothesis
shrinks it and it is printed as a ready-to-paste YAML case.
"""
from __future__ import annotations

import itertools
import os
import re
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Iterable

from hypothesis import HealthCheck, Phase, Verbosity, given, settings, strategies as st
from hypothesis import seed as hypothesis_seed

from ..engines import DEFAULT_ENGINES
from ..errors import CaseError
from ..layers import ACTIVATIONS, LAYERS
from ..runner import run_one
from ..schema import Case, _expand

# Shrinking goes to the first value of each list: the plainest configuration comes first.
DTYPES = ("float32", "float64", "float16", "bfloat16")
DATA_FORMATS = ("channels_last", "channels_first")
FUZZ_FILE = "fuzz.yaml"   # the file name a generated case carries (it appears in messages as [fuzz.yaml::id])
MAX_KERNEL, MAX_STRIDE, MAX_DILATION, MAX_CHANNELS, MAX_BATCH, MAX_EXTRA = 4, 3, 3, 5, 3, 7
_ids = itertools.count()
# Disagreements that are the framework's bug, not the harness's: (engine, mutant the diagnosis names) -> what.
# They are counted and reported as true alarms, apart from false alarms, and the run goes on.
KNOWN_BUGS = {
    ("keras", "bias_add_format_guessed"):
        "Keras 3.15.1: channels_first bias added along the last axis when it is as long as the channel count "
        "(keras.ops.add -> tf.nn.bias_add with a data_format guessed from the shapes)",
}


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
    if kind.family == "conv":
        groups = draw(st.sampled_from([d for d in range(1, channels + 1) if channels % d == 0]))
        config.update(filters=groups * draw(st.integers(1, 3)), groups=groups)
    elif kind.family == "depthwise":
        config["depth_multiplier"] = draw(st.integers(1, 3))
    else:
        config.update(filters=draw(st.integers(1, MAX_CHANNELS)), depth_multiplier=draw(st.integers(1, 3)))
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
    return _expand(FUZZ_FILE, case_id, {}, {"id": case_id, **entry})[0]


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
    known_bugs: dict[str, int] = field(default_factory=dict)            # "engine dtype: bug" -> count
    known_example: dict[str, str] = field(default_factory=dict)         # bug -> one configuration showing it
    false_alarms: list[str] = field(default_factory=list)               # shrunk YAML + message, one per alarm
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
    """Run one configuration in every engine; return the false alarms (fail or error verdicts)."""
    try:
        case = to_case(entry)
    except CaseError:
        if stats is not None:
            stats.invalid += 1
        return []
    alarms, refused = [], False
    for engine in engines:
        r = run_one(case, engine)
        key = f"{engine} {case.dtype}"
        bug = _known_bug(engine, r.message) if r.verdict == "fail" else None
        if r.verdict in ("fail", "error") and bug is None:
            alarms.append(r.message)
        if stats is None:
            continue
        if bug is not None:
            stats.known_bugs[f"{key}: {bug}"] = stats.known_bugs.get(f"{key}: {bug}", 0) + 1
            stats.known_example.setdefault(bug, f"{case.layer} {list(case.input_shape)} {case.config}")
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
    return alarms


def _known_bug(engine: str, message: str) -> str | None:
    """The known framework bug that the failure's diagnosis names first (its closest reproduction), if any."""
    named = re.search(r"diagnosis: matches the oracle with .*?\[mutant (\w+)\]", message)
    return KNOWN_BUGS.get((engine, named.group(1))) if named else None


class FalseAlarm(AssertionError):
    """A valid configuration on which an engine disagreed with the oracle (or crashed)."""


def search(examples: int, engines: Iterable[str] = DEFAULT_ENGINES, seed: int | None = 0,
           strategy: st.SearchStrategy | None = None, progress: bool = False, max_alarms: int = 5) -> Stats:
    """Try ``examples`` configurations in every engine. A false alarm is shrunk by hypothesis and recorded as
    YAML; the search then goes on with a fresh seed, up to ``max_alarms`` alarms.

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
            yaml_text = to_yaml(found["entry"], "fuzz-shrunk") if "entry" in found else "(no example recorded)"
            stats.false_alarms.append(f"{found['message']}\n{yaml_text}")
        if ("message" not in found or seed is None or stats.tried >= examples
                or len(stats.false_alarms) >= max_alarms):
            break
    stats.duration_s = time.perf_counter() - start
    return stats


def _search_once(examples: int, engines: list[str], seed: int | None, strategy: st.SearchStrategy | None,
                 stats: Stats, progress_of: int, start: float) -> dict[str, Any]:
    """One hypothesis run: up to ``examples`` tries, stopping at the first false alarm (shrunk)."""
    found: dict[str, Any] = {}

    @settings(max_examples=examples, deadline=None, database=None, derandomize=seed is None,
              phases=(Phase.generate, Phase.shrink), suppress_health_check=list(HealthCheck),
              verbosity=Verbosity.quiet, print_blob=False)
    @given(entry=strategy if strategy is not None else entries())
    def probe(entry: dict[str, Any]) -> None:
        # Once an alarm is found, hypothesis replays smaller variants: those are not counted as tries.
        before = stats.tried
        alarms = check_entry(entry, engines, None if found else stats)
        if progress_of and stats.tried != before and stats.tried % 500 == 0:
            rate = stats.tried / (time.perf_counter() - start)
            print(f"fuzz[{os.getpid()}]: {stats.tried}/{progress_of} configurations, {rate:.1f}/s", file=sys.stderr)
        if alarms:
            found["entry"], found["message"] = entry, alarms[0]
            raise FalseAlarm(alarms[0])

    if seed is not None:
        probe = hypothesis_seed(seed)(probe)
    try:
        probe()
    except FalseAlarm:
        pass
    except Exception as exc:  # noqa: BLE001 - e.g. hypothesis Flaky: still report what was found
        found.setdefault("message", f"{type(exc).__name__}: {exc}")
    return found


def _worker(examples: int, engines: list[str], seed: int, progress: bool) -> Stats:
    # One thread per framework in a worker: the workers already share out the cores, and tiny convolutions
    # run several times faster single-threaded (thread hand-off dominates them).
    if "keras" in engines:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    if "torch" in engines:
        import torch

        torch.set_num_threads(1)
    return search(examples, engines, seed, progress=progress)


def run(examples: int, engines: Iterable[str] = DEFAULT_ENGINES, seed: int = 0, jobs: int = 1,
        progress: bool = True) -> Stats:
    """The long run: ``examples`` configurations split over ``jobs`` processes (seeds seed, seed+1, ...).

    Workers are fresh interpreters (``python -m harness.detection.fuzz``), not forks: TensorFlow and torch do
    not survive a fork, and spawning through multiprocessing would re-run the CLI's unguarded __main__.
    """
    import json
    import subprocess

    engines = list(engines)
    start = time.perf_counter()
    if jobs <= 1:
        total = _worker(examples, engines, seed, progress)
    else:
        shares = [examples // jobs + (1 if i < examples % jobs else 0) for i in range(jobs)]
        procs = [subprocess.Popen([sys.executable, "-m", __name__, json.dumps([n, engines, seed + i, progress])],
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
        lines.append("true alarms: known framework bugs, diagnosed (not false alarms; the run goes on):")
        lines += [f"  {k}: {v}" for k, v in sorted(s.known_bugs.items())]
        lines += [f"  e.g. {v}" for v in s.known_example.values()]
    lines.append(f"false alarms: {len(s.false_alarms)}" + (" (each shrunk by hypothesis, as a YAML case below)"
                                                           if s.false_alarms else " (expected 0)"))
    for alarm in s.false_alarms:
        lines.append(alarm)
    return "\n".join(lines)


if __name__ == "__main__":   # a worker of run(): arguments as JSON, Stats as JSON on the last stdout line
    import dataclasses
    import json

    _n, _engines, _seed, _progress = json.loads(sys.argv[1])
    print(json.dumps(dataclasses.asdict(_worker(_n, _engines, _seed, _progress))))
