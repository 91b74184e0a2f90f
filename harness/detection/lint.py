"""Lint the cases: which mutants each case kills, and the weak ones (kill none and carry no golden output)."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..schema import Case
from .score import Sweep, sweep

CONSTANT_INITS = {"zeros", "ones", "constant", "channels"}


@dataclass
class LintEntry:
    case: Case
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


def lint(cases: list[Case]) -> tuple[list[LintEntry], Sweep]:
    """Every mutant on every case (no early stop): per case, the mutants it kills."""
    s = sweep(cases, first_only=False)
    entries = []
    for case in s.cases:
        golden = "output" in case.expect or bool(case.expect.get("output_at"))
        e = LintEntry(case=case, kills=s.killed_by.get(case.id, []), golden=golden)
        if e.weak:
            e.hints = hints(case)
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
    lines.append(f"{len(entries)} cases linted against {len(s.mutants) + len(s.backward)} mutants in "
                 f"{s.duration_s:.1f} s: {weak} weak"
                 + (f"; not linted (too big): {', '.join(c.id for c in s.excluded)}" if s.excluded else ""))
    return "\n".join(lines)
