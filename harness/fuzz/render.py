"""A fuzz run's Stats as the text a person reads (rendered at the edge, from the data)."""
from __future__ import annotations

from ..known.registry import REGISTRY
from .stats import KINDS, Stats


def _counted(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


# How format_stats heads each kind of finding: its title, and what it means where there are any.
_TITLES = {
    "nondeterministic": ("nondeterministic engine output",
                         "true bugs of that engine, in no registry entry: values change from run to run"),
    "state_dependent": ("state-dependent",
                        "disagreed in the fuzzing process only, never in a fresh one; not counted as false alarms"),
    "false_alarm": ("false alarms", ("expected 0; per cause, its smallest example, shrunk by hypothesis and "
                                    "reproduced in fresh processes, as a YAML case below")),
}


def _format_causes(s: Stats) -> list[str]:
    """The summary of alarms by cause: how many distinct causes, and per cause its alarms and its kind."""
    if not s.groups:
        return []
    alarms = sum(s.alarms.get(c, 1) for c in s.groups)
    lines = [(f"alarms by cause (configurations on which an engine disagreed or crashed, known bugs apart): "
             f"{_counted(len(s.groups), 'distinct cause')}, {_counted(alarms, 'alarm')}")]
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
    lines = [(f"{title}: {_counted(s.alarm_count(kind), 'alarm')} of {_counted(len(causes), 'distinct cause')} "
             f"({meaning})")]
    for c in causes:
        lines.append(f"cause: {c} ({_counted(s.alarms.get(c, 1), 'alarm')}); the smallest example:")
        lines.append(s.groups[c]["text"])
    return lines


def format_stats(s: Stats) -> str:
    lines = [(f"fuzz: {s.tried} configurations tried in {s.duration_s:.0f} s "
             f"({s.tried / max(s.duration_s, 1e-9):.1f}/s, {s.workers} worker(s)); "
             f"{s.invalid} refused by the schema (a strategy bug if not 0)"),
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
        lines.append("true alarms: known framework bugs, by registry id (harness/known/registry.py; not false alarms, "
                     "the run goes on):")
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
