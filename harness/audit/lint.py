"""Lint the cases and stacks: which mutants each kills, and the weak ones (kill none and carry no golden output).

A stack kills a mutant applied to one of its layers when it fails naming that layer (harness.mutation.score)."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..cases.schema import Case
from ..cases.stacks import StackCase
from ..mutation.score import Sweep, sweep

CONSTANT_INITS = {"zeros", "ones", "constant", "channels"}


@dataclass
class LintEntry:
    case: Case | StackCase
    kills: list[str]
    golden: bool                     # carries an independent golden output (expect.output / output_at)
    hints: list[str] = field(default_factory=list)

    @property
    def weak(self) -> bool:
        return not self.kills and not self.golden


def _init(spec) -> str | None:
    if isinstance(spec, str):
        return spec
    if isinstance(spec, dict):
        return spec.get("init")
    return "explicit"


def hints(case: Case) -> list[str]:
    """Why a case cannot see common port mistakes (said for weak cases)."""
    g = case.geometry
    out = []
    if _init(case.input) in CONSTANT_INITS:
        out.append("constant input (over space): shifts, flips and padding splits sum the same pixels")
    kernels = [n for n in ("kernel", "depthwise_kernel") if n in g.weight_shapes()]
    if kernels and all(_init(case.weights.get(n, "normal")) in CONSTANT_INITS for n in kernels):
        out.append("constant kernel: flips, H/W swaps and reorderings of it change nothing")
    spatial = case.input_shape[2:] if g.channels_first else case.input_shape[1:-1]
    axes = list(zip(spatial, g.kernel_size, g.strides))   # at any rank: two alike axes can be swapped unseen
    if len(set(axes)) < len(axes):
        out.append("two spatial axes alike (H == W, or D == H, ...) in length, kernel and stride: "
                   "swaps of them (H/W swaps) are invisible")
    out.extend(g.kind.family.weak_spots(g))
    if case.input_shape[0] == 1:
        out.append("batch 1: a lost batch axis is invisible")
    if g.padding == "valid" and all(s == 1 for s in g.strides):
        out.append("valid padding, stride 1: padding mistakes are invisible")
    if not g.use_bias or _init(case.weights.get("bias", "normal")) == "zeros":
        out.append("no (or zero) bias: bias mistakes are invisible")
    return out


def stack_hints(one: StackCase) -> list[str]:
    """Why a stack cannot see common port mistakes: its layers' hints (hints), each said once, with the layers."""
    where: dict[str, list[str]] = {}
    for i, layer in enumerate(one.layers):
        for hint in hints(layer.case):
            where.setdefault(hint, []).append(f"[{i}]")
    return [f"layers{''.join(at)}: {hint}" for hint, at in where.items()]


def lint(cases: list[Case], stacks: list[StackCase] | None = None) -> tuple[list[LintEntry], Sweep]:
    """Every mutant on every case and on every layer of every stack (no early stop): per case or stack, the mutants
    it kills."""
    s = sweep(cases, first_only=False, stacks=stacks)
    entries = []
    for case in s.cases:
        golden = "output" in case.expect or bool(case.expect.get("output_at"))
        e = LintEntry(case=case, kills=s.killed_by.get(case.id, []), golden=golden)
        if e.weak:
            e.hints = hints(case)
        entries.append(e)
    for one in s.stacks:   # a stack has no golden output
        e = LintEntry(case=one, kills=s.killed_by.get(one.id, []), golden=False)
        if e.weak:
            e.hints = stack_hints(one)
        entries.append(e)
    return entries, s


def format_lint(entries: list[LintEntry], s: Sweep, weak_only: bool = False) -> str:
    lines = []
    for e in entries:
        if weak_only and not e.weak:
            continue
        where = f"{e.case.file}::{e.case.id}"
        if e.weak:
            lines.append(f"WEAK {where}: kills no mutant and has no golden output (expect.output/output_at)"
                         + (f"; {'; '.join(e.hints)}" if e.hints else ""))
        else:
            kills = f"kills {len(e.kills)}: {', '.join(e.kills)}" if e.kills else "kills none"
            lines.append(f"ok   {where}: {kills}" + (" (golden output)" if e.golden else ""))
    weak = sum(e.weak for e in entries)
    stacks = f" and {len(s.stacks)} stacks" if s.stacks else ""
    lines.append(f"{len(s.cases)} cases{stacks} linted against {len(s.mutants) + len(s.backward)} mutants in "
                 f"{s.duration_s:.1f} s: {weak} weak"
                 + (f"; not linted (too big): {', '.join(c.id for c in s.excluded)}" if s.excluded else ""))
    lines.extend(f"misattributed: {e}" for e in s.misnamed)
    return "\n".join(lines)
