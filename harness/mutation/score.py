"""Mutation score: every mutant over the shipped cases, in-process; a mutant is killed by a case that fails it.

A stack kills a forward mutant applied to one of its layers (the others computed by the correct port) when it fails
and names that layer the culprit; a failure that names another layer is a misattribution, reported as such.

Forward mutants run on every case's forward item; backward mutants (mutants.BACKWARD_MUTANTS: the forward right,
the gradients wrong) on the backward items of the cases that ask for the backward check, where the backward
control (mutants.BACKWARD_CONTROL) and every control that computes gradients run too."""
from __future__ import annotations

import math
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from .. import engines
from ..cases.schema import Case
from ..cases.stacks import StackCase
from ..judge.runner import run_one
from ..judge.sequence import culprit_of
from ..judge.stack_run import run as run_sequence
from ..layers.geometry import LAYERS, output_shape
from . import mutants

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

    mutants: list[str]                                                  # forward mutants
    controls: list[str]
    cases: list[Case]                                                   # the cases run (small enough)
    backward: list[str] = field(default_factory=list)                   # backward mutants (on backward items)
    excluded: list[Case] = field(default_factory=list)                  # too big for the sweep
    killed_by: dict[str, list[str]] = field(default_factory=dict)        # case id -> mutants it kills
    killers: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))   # mutant -> case ids
    kind_killers: dict[str, dict[str, list[str]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list)))                 # mutant -> layer -> ids
    applicable: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))   # mutant -> layers run
    verdicts: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))  # engine -> verdicts
    # engine -> verdicts of its backward items (the backward mutants' are in `verdicts`)
    backward_verdicts: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    # control -> messages; a control's backward items under "NAME (backward)"
    control_failures: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    errors: list[str] = field(default_factory=list)                     # mutants that crashed (not kills)
    stacks: list[StackCase] = field(default_factory=list)               # the stacks run (a mutant per layer)
    # a mutant applied to layer i of a stack that failed it naming another layer the culprit (a wrong attribution)
    misnamed: list[str] = field(default_factory=list)
    duration_s: float = 0.0
    first_only: bool = False

    @property
    def backward_cases(self) -> list[Case]:
        return [c for c in self.cases if "backward" in c.check]

    @property
    def survivors(self) -> list[str]:
        """Every mutant no case kills, forward and backward."""
        return [m for m in self.mutants + self.backward if not self.killers[m]]

    @property
    def gaps(self) -> list[tuple[str, str]]:
        """(mutant, layer kind) pairs where the mutant ran on some case of that kind but no case killed it."""
        return self.gaps_of(self.mutants + self.backward)

    def gaps_of(self, names: list[str]) -> list[tuple[str, str]]:
        return [(m, k) for m in names for k in LAYERS if k in self.applicable[m] and not self.kind_killers[m][k]]

    @property
    def score(self) -> float:
        """The forward mutants' score (as before the backward mutants came)."""
        return self.score_of(self.mutants)

    @property
    def backward_score(self) -> float:
        return self.score_of(self.backward)

    def score_of(self, names: list[str]) -> float:
        return sum(1 for m in names if self.killers[m]) / max(len(names), 1)


def sweep(cases: list[Case], mutant_names: list[str] | None = None, controls: tuple[str, ...] | list[str] = (),
          first_only: bool = False, max_elements: int = MAX_ELEMENTS, stacks: list[StackCase] | None = None) -> Sweep:
    """Run every mutant (and control) on every case, judged by harness.judge.runner.run_one.

    ``first_only`` stops a mutant in a layer kind at its first kill there (what the test needs); otherwise every
    pair runs (what `make mutants` and lint print). Controls always run every case (and every backward item, those
    that compute gradients). ``mutant_names`` may name forward and backward mutants; by default every forward
    mutant, and every backward mutant where some case asks for the backward check.
    """
    # A configuration that cannot run (pinned by its refusals) has no output for a mutant to get wrong.
    cases = [c for c in cases if not c.impossible]
    names = [n for n in mutant_names or mutants.MUTANTS if n in mutants.MUTANTS]
    wanted = mutant_names or (list(mutants.BACKWARD_MUTANTS) if any("backward" in c.check for c in cases) else [])
    backward = [n for n in wanted if n in mutants.BACKWARD_MUTANTS]
    mutants.register(names + backward)
    plugin_controls = [c for c in controls if c in mutants.CONTROLS]
    backward_controls = [c for c in controls if _computes_gradients(c)]
    if backward and mutants.BACKWARD_CONTROL not in backward_controls:
        backward_controls.append(mutants.BACKWARD_CONTROL)   # the backward mutants' own control
        plugin_controls.append(mutants.BACKWARD_CONTROL)
    if plugin_controls:
        mutants.register(plugin_controls)
    small = [c for c in cases if case_size(c) <= max_elements]
    out = Sweep(mutants=names, controls=list(controls), cases=small, backward=backward,
                excluded=[c for c in cases if case_size(c) > max_elements], first_only=first_only)
    start = time.perf_counter()
    # Cheap cases first: with first_only most mutants are killed before the larger cases come.
    # No diagnoser (run_one's default): the sweep judges thousands of deliberate failures, and only counts them.
    for case in sorted(small, key=case_size):
        killed = out.killed_by.setdefault(case.id, [])
        for name in names:
            _run_mutant(out, case, name, "forward", killed)
        if "backward" in case.check:
            for name in backward:
                _run_mutant(out, case, name, "backward", killed)
        for name in controls:
            r = run_one(case, name)
            out.verdicts[name][r.verdict] += 1
            # A fail the case expects of this engine (its known bug, where it holds) is no control failure.
            if r.verdict == "error" or (r.verdict == "fail" and not r.xfail):
                out.control_failures[name].append(r.message)
        if "backward" in case.check and backward_controls:
            for name in backward_controls:
                r = run_one(case, name, "backward")
                out.backward_verdicts[name][r.verdict] += 1
                # A fail the case expects of this engine (its known bug, where it holds) is no control failure.
                if r.verdict == "error" or (r.verdict == "fail" and not r.xfail):
                    out.control_failures[f"{name} (backward)"].append(r.message)
    for one in stacks or []:
        _sweep_stack(out, one, names, controls)
    out.duration_s = time.perf_counter() - start
    return out


def _sweep_stack(out: Sweep, one: StackCase, names: list[str], controls: tuple[str, ...] | list[str]) -> None:
    """Every forward mutant on each layer of ``one`` where its bug can occur (the other layers by the correct port,
    mutants.stack_function): a kill is a fail whose culprit is that layer. The controls run the stack too."""
    out.stacks.append(one)
    killed = out.killed_by.setdefault(one.id, [])
    for name in names:
        mutant = mutants.MUTANTS[name]
        for i, layer in enumerate(one.layers):
            if not mutant.applies(layer.layer, one.dtype) or (out.first_only and out.kind_killers[name][layer.layer]):
                continue
            out.applicable[name].add(layer.layer)
            try:
                run = run_sequence(one, name, mutants.stack_function(mutant, at=i))
            except Exception as exc:  # noqa: BLE001 - a mutant's crash is no kill, and never stops the sweep
                out.errors.append(f"{name} crashed on stack {one.id} layers[{i}]: {type(exc).__name__}: {exc}")
                continue
            out.verdicts[name][run.verdict] += 1
            if run.verdict != "fail":
                continue
            culprit = culprit_of(run.findings)
            if culprit != i:
                out.misnamed.append(f"{name} in layers[{i}] of stack {one.id} named layers[{culprit}]: {run.message}")
                continue
            if name not in killed:
                killed.append(name)
                out.killers[name].append(one.id)
            out.kind_killers[name][layer.layer].append(f"{one.id} layers[{i}]")
    for name in controls:
        r = run_one(one, name)
        out.verdicts[name][r.verdict] += 1
        if r.verdict == "error" or (r.verdict == "fail" and not r.xfail):
            out.control_failures[name].append(r.message)


def _run_mutant(out: Sweep, case: Case, name: str, check: str, killed: list[str]) -> None:
    """One mutant on one item of ``case``: a fail is a kill, a skip means the mutant cannot occur there."""
    if out.first_only and out.kind_killers[name][case.layer]:
        return
    r = run_one(case, name, check)
    out.verdicts[name][r.verdict] += 1
    if r.verdict == "skip":
        return
    out.applicable[name].add(case.layer)
    if r.verdict == "fail":
        killed.append(name)
        out.killers[name].append(case.id)
        out.kind_killers[name][case.layer].append(case.id)
    elif r.verdict == "error":
        out.errors.append(f"{name} crashed on {case.id}{'' if check == 'forward' else ' (backward)'}: {r.message}")


def _computes_gradients(name: str) -> bool:
    """Whether engine ``name`` answers backward items (a plug-in: where its function takes grad_output)."""
    try:
        if name in engines.BUILTIN:
            return bool(engines.engine_class(name).computes_gradients)
        engine = engines.get(name)
        takes = getattr(engine, "takes_grad_output", None)
        return bool(takes()) if takes is not None else bool(engine.computes_gradients)
    except Exception:  # noqa: BLE001 - an engine that cannot be asked is not run on backward items
        return False


def format_score(s: Sweep, killers_shown: int = 3) -> str:
    """The mutation score, then per mutant: layer kinds killed in, number of killing cases and some of them; the
    backward mutants' score and table after the forward ones (where they ran)."""
    width = max((len(m) for m in s.mutants + s.backward), default=10)
    lines: list[str] = []
    if s.mutants or not s.backward:
        stacks = f" and {len(s.stacks)} stacks (a mutant in each layer)" if s.stacks else ""
        lines.append(_score_line("mutation score", "mutants", s, s.mutants, f"{len(s.cases)} cases{stacks} in "
                                 f"{s.duration_s:.1f} s"))
        lines += _mutant_lines(s, s.mutants, width, killers_shown)
    if s.backward:
        lines.append(_score_line("backward mutation score", "backward mutants", s, s.backward,
                                 f"{len(s.backward_cases)} cases with a backward check (their backward items)"
                                 + ("" if s.mutants else f" in {s.duration_s:.1f} s")))
        lines += _mutant_lines(s, s.backward, width, killers_shown)
    for c in s.controls:
        fails = s.control_failures.get(c, [])
        v = s.verdicts[c]
        lines.append(f"control {c}: {v['pass']} pass, {v['skip'] + v['rejected']} skip, {len(fails)} fail/error"
                     + ("" if not fails else f" -- e.g. {fails[0]}"))
    for c, v in s.backward_verdicts.items():
        fails = s.control_failures.get(f"{c} (backward)", [])
        lines.append(f"control {c} (backward items): {v['pass']} pass, {v['skip'] + v['rejected']} skip, "
                     f"{len(fails)} fail/error" + ("" if not fails else f" -- e.g. {fails[0]}"))
    for e in s.errors[:10]:
        lines.append(f"error (not a kill): {e}")
    for e in s.misnamed:
        lines.append(f"misattributed (not a kill): {e}")
    if s.excluded:
        lines.append(f"not run (over {MAX_ELEMENTS} elements): {', '.join(c.id for c in s.excluded)}")
    return "\n".join(lines)


def _score_line(title: str, what: str, s: Sweep, names: list[str], cases: str) -> str:
    killed = sum(1 for m in names if s.killers[m])
    pairs = sum(len(s.applicable[m]) for m in names)
    return (f"{title}: {killed}/{len(names)} {what} killed ({100 * s.score_of(names):.0f}%); "
            f"(mutant, layer kind) pairs killed: {pairs - len(s.gaps_of(names))}/{pairs}; "
            f"{cases}"
            + (" (stopping at the first kill per mutant and layer kind)" if s.first_only else ""))


def _mutant_lines(s: Sweep, names: list[str], width: int, killers_shown: int) -> list[str]:
    lines = []
    for m in names:
        ids = s.killers[m]
        kinds = f"{sum(1 for k in s.applicable[m] if s.kind_killers[m][k])}/{len(s.applicable[m])} kinds"
        shown = ", ".join(ids[:killers_shown]) + (", ..." if len(ids) > killers_shown else "")
        status = f"{len(ids)} killing cases: {shown}" if ids else "SURVIVES every case"
        lines.append(f"  {m.ljust(width)}  {kinds:>9}  {status}")
        lines.append(f"  {''.ljust(width)}  {'':>9}  models: {mutants.CATALOGUE[m].bug}")
    for m, k in s.gaps_of(names):
        lines.append(f"gap: {m} runs on {k} cases but none of them kills it")
    return lines
