"""Mutation score: every mutant over the shipped cases, in-process; a mutant is killed by a case that fails it."""
from __future__ import annotations

import math
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from ..layers import LAYERS, output_shape
from ..runner import run_one
from ..schema import Case
from . import diagnose, mutants

# Cases whose input or output has more elements than this are left out of the sweep (listed as such): a mutant
# computes the whole layer in float64, and the one big worked example (82M outputs) would cost minutes per mutant.
MAX_ELEMENTS = 1_000_000
DEFAULT_CONTROLS = ("numpy_port", "reference_port", "torch")


def case_size(case: Case) -> int:
    out = output_shape(case.geometry, case.input_shape)
    return max(math.prod(case.input_shape), math.prod(out))


@dataclass
class Sweep:
    """Which mutants each case kills, and how every mutant and control fared."""

    mutants: list[str]
    controls: list[str]
    cases: list[Case]                                                   # the cases run (small enough)
    excluded: list[Case] = field(default_factory=list)                  # too big for the sweep
    killed_by: dict[str, list[str]] = field(default_factory=dict)        # case id -> mutants it kills
    killers: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))   # mutant -> case ids
    kind_killers: dict[str, dict[str, list[str]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list)))                 # mutant -> layer -> ids
    applicable: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))   # mutant -> layers run
    verdicts: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))  # engine -> verdicts
    control_failures: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))  # messages
    errors: list[str] = field(default_factory=list)                     # mutants that crashed (not kills)
    duration_s: float = 0.0
    first_only: bool = False

    @property
    def survivors(self) -> list[str]:
        return [m for m in self.mutants if not self.killers[m]]

    @property
    def gaps(self) -> list[tuple[str, str]]:
        """(mutant, layer kind) pairs where the mutant ran on some case of that kind but no case killed it."""
        return [(m, k) for m in self.mutants for k in LAYERS
                if k in self.applicable[m] and not self.kind_killers[m][k]]

    @property
    def score(self) -> float:
        return (len(self.mutants) - len(self.survivors)) / max(len(self.mutants), 1)


def sweep(cases: list[Case], mutant_names: list[str] | None = None, controls: tuple[str, ...] | list[str] = (),
          first_only: bool = False, max_elements: int = MAX_ELEMENTS) -> Sweep:
    """Run every mutant (and control) on every case, judged by harness.runner.run_one.

    ``first_only`` stops a mutant in a layer kind at its first kill there (what the test needs); otherwise every
    pair runs (what `make mutants` and lint print). Controls always run every case.
    """
    # A configuration that cannot run (pinned by its refusals) has no output for a mutant to get wrong.
    cases = [c for c in cases if not c.impossible]
    names = list(mutant_names or mutants.MUTANTS)
    mutants.register(names)
    plugin_controls = [c for c in controls if c in mutants.CONTROLS]
    if plugin_controls:
        mutants.register(plugin_controls)
    small = [c for c in cases if case_size(c) <= max_elements]
    out = Sweep(mutants=names, controls=list(controls), cases=small,
                excluded=[c for c in cases if case_size(c) > max_elements], first_only=first_only)
    start = time.perf_counter()
    # Cheap cases first: with first_only most mutants are killed before the larger cases come.
    with diagnose.suppressed():
        for case in sorted(small, key=case_size):
            killed = out.killed_by.setdefault(case.id, [])
            for name in names:
                if first_only and out.kind_killers[name][case.layer]:
                    continue
                r = run_one(case, name)
                out.verdicts[name][r.verdict] += 1
                if r.verdict == "skip":
                    continue
                out.applicable[name].add(case.layer)
                if r.verdict == "fail":
                    killed.append(name)
                    out.killers[name].append(case.id)
                    out.kind_killers[name][case.layer].append(case.id)
                elif r.verdict == "error":
                    out.errors.append(f"{name} crashed on {case.id}: {r.message}")
            for name in controls:
                r = run_one(case, name)
                out.verdicts[name][r.verdict] += 1
                if r.verdict in ("fail", "error"):
                    out.control_failures[name].append(r.message)
    out.duration_s = time.perf_counter() - start
    return out


def format_score(s: Sweep, killers_shown: int = 3) -> str:
    """The mutation score, then per mutant: layer kinds killed in, number of killing cases and some of them."""
    killed = len(s.mutants) - len(s.survivors)
    pairs = sum(len(s.applicable[m]) for m in s.mutants)
    lines = [f"mutation score: {killed}/{len(s.mutants)} mutants killed ({100 * s.score:.0f}%); "
             f"(mutant, layer kind) pairs killed: {pairs - len(s.gaps)}/{pairs}; "
             f"{len(s.cases)} cases in {s.duration_s:.1f} s"
             + (" (stopping at the first kill per mutant and layer kind)" if s.first_only else "")]
    width = max(len(m) for m in s.mutants) if s.mutants else 10
    for m in s.mutants:
        ids = s.killers[m]
        kinds = f"{sum(1 for k in s.applicable[m] if s.kind_killers[m][k])}/{len(s.applicable[m])} kinds"
        shown = ", ".join(ids[:killers_shown]) + (", ..." if len(ids) > killers_shown else "")
        status = f"{len(ids)} killing cases: {shown}" if ids else "SURVIVES every case"
        lines.append(f"  {m.ljust(width)}  {kinds:>9}  {status}")
        lines.append(f"  {''.ljust(width)}  {'':>9}  models: {mutants.MUTANTS[m].bug}")
    for m, k in s.gaps:
        lines.append(f"gap: {m} runs on {k} cases but none of them kills it")
    for c in s.controls:
        fails = s.control_failures.get(c, [])
        v = s.verdicts[c]
        lines.append(f"control {c}: {v['pass']} pass, {v['skip'] + v['rejected']} skip, {len(fails)} fail/error"
                     + ("" if not fails else f" -- e.g. {fails[0]}"))
    for e in s.errors[:10]:
        lines.append(f"error (not a kill): {e}")
    if s.excluded:
        lines.append(f"not run (over {MAX_ELEMENTS} elements): {', '.join(c.id for c in s.excluded)}")
    return "\n".join(lines)
