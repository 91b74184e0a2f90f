"""What a fuzz run saw, as plain data that crosses process boundaries and merges across workers and shards."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

# What a re-check makes of a cause, the surest first: where workers disagree on a cause, the surest one is kept.
KINDS = ("false_alarm", "nondeterministic", "state_dependent")


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
    #   smallest example as re-checked (kind: one of KINDS; text: message + YAML; size: see size_of)
    rechecks: int = 0                                                   # fresh processes run to re-check alarms
    duration_s: float = 0.0
    workers: int = 1

    def merge(self, other: Stats) -> None:
        """Add another worker's or shard's counts to these."""
        self.tried += other.tried
        self.invalid += other.invalid
        self.rejected_configs += other.rejected_configs
        for key, v in other.runs.items():
            self.runs[key] = self.runs.get(key, 0) + v
        for key, ratio in other.max_ratio.items():
            if ratio >= self.max_ratio.get(key, -1.0):
                self.max_ratio[key], self.worst[key] = ratio, other.worst[key]
        for mine, theirs in ((self.rejected, other.rejected), (self.skipped, other.skipped),
                             (self.known_bugs, other.known_bugs)):
            for key, v in theirs.items():
                mine[key] = mine.get(key, 0) + v
        for key, example in other.known_example.items():
            self.known_example.setdefault(key, example)
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


def size_of(entry: dict[str, Any] | None) -> list[int]:
    """How big an example is, to keep the smallest: input elements, then the length of its description."""
    if entry is None:
        return [0, 0]
    return [math.prod(entry.get("input_shape") or [0]), len(json.dumps(entry, sort_keys=True, default=str))]
