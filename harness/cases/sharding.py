"""Deterministic sharding: the cases (and pytest items) of a run split across N jobs, a whole case per shard.

Every job of a CI matrix collects the same cases and calls ``assign`` with the same estimated costs, so each
job computes the same split without talking to the others: no stored durations, nothing machine-specific. A case
is never divided (its engines share its reference, computed once per process). The split is greedy by estimated
cost (longest first, each to the shard with the least cost so far; ties by key, then by the lowest shard), and
the cost is computed from the configuration alone, without a framework: a fixed cost per (case, engine) plus one
proportional to output elements x reduction length K (the multiply-adds of the layer).

Used by ``pytest --shard i/n`` (the plug-in harness.frontends.shard) and ``python -m harness report --shard i/n``
(harness.report.merge joins the shards' results again). Imports neither pytest nor a framework.
"""
from __future__ import annotations

import hashlib
import heapq
import math
from collections.abc import Hashable, Iterable, Sequence
from typing import TYPE_CHECKING, TypeVar

from ..layers.geometry import output_shape

if TYPE_CHECKING:
    from .schema import Case
    from .stacks import StackCase

# Estimated seconds: a (case, engine) pair costs ITEM_S (framework call, judging) plus MAC_S per multiply-add of the
# layer (output elements x K, the oracle's float64 pass being the slowest engine). Only ratios matter to the split.
ITEM_S = 0.004
MAC_S = 5e-9
# A pytest item that is not a case (a test of the harness itself): unknown cost, so a typical small one.
TEST_ITEM_S = 0.05
STRATEGY = (f"greedy by estimated cost (largest first, each to the shard with the least so far; a case's items stay "
            f"together); cost of a case = engines x ({ITEM_S:g} s + output elements x K x {MAC_S:g} s)")

K = TypeVar("K", bound=Hashable)


def parse(text: str) -> tuple[int, int]:
    """``"i/n"`` (1 <= i <= n) -> (i, n); ValueError saying what is wrong otherwise."""
    head, sep, tail = str(text).partition("/")
    try:
        index, count = int(head), int(tail)
    except ValueError:
        index = count = 0
    if not sep or count < 1 or not 1 <= index <= count:
        raise ValueError(f"--shard {text!r}: must be I/N with 1 <= I <= N, e.g. 2/4 (the second of four jobs)")
    return index, count


# What the backward check of a case costs against its forward check: the forward again (the pre-activation), and
# the input's and every kernel's gradient, each about one forward's multiply-adds.
BACKWARD_WEIGHT = 3


def case_cost(case: Case | StackCase, items: int = 1) -> float:
    """Estimated seconds of ``items`` (case, engine) pairs of ``case``, from its configuration alone (its backward
    check, where it asks for one, counted as BACKWARD_WEIGHT more). A stack has no one geometry: a fixed cost."""
    try:
        g = getattr(case, "geometry", None)   # a stack has none: the fixed cost
        macs = 0 if g is None else math.prod(output_shape(g, tuple(case.input_shape))) * g.reduction_length()
    except Exception:  # noqa: BLE001 - an impossible configuration (a pinned refusal) costs what a refusal costs
        macs = 0
    checks = 1 + (BACKWARD_WEIGHT if "backward" in getattr(case, "check", ()) else 0)
    return checks * (items * ITEM_S + max(macs, 0) * MAC_S)


def check_complete(indices: Sequence[int], count: int) -> None:
    """ValueError unless ``indices`` are every shard 1..count, each once (what a --merge needs)."""
    missing = sorted(set(range(1, count + 1)) - set(indices))
    twice = sorted({i for i in indices if list(indices).count(i) > 1})
    if missing or twice:
        raise ValueError("--merge: " + "; ".join(
            ([f"shard(s) {', '.join(f'{i}/{count}' for i in missing)} missing"] if missing else [])
            + ([f"shard(s) {', '.join(f'{i}/{count}' for i in twice)} given more than once"] if twice else [])))


def case_key(case: Case) -> str:
    """What identifies a case across jobs: its file and id (ids are unique across a suite)."""
    return f"{case.file}::{case.id}"


def assign(costs: dict[K, float], count: int) -> dict[K, int]:
    """Greedy split of groups (key -> estimated cost) into ``count`` shards: key -> shard index (1-based).

    Deterministic for the same keys and costs whatever their order: groups are taken by decreasing cost (ties by
    key, as text), each to the shard whose estimated cost is the least so far (ties to the lowest index)."""
    heap = [(0.0, i) for i in range(1, count + 1)]
    out: dict[K, int] = {}
    for key in sorted(costs, key=lambda k: (-costs[k], str(k))):
        load, index = heapq.heappop(heap)
        out[key] = index
        heapq.heappush(heap, (load + costs[key], index))
    return out


def select(cases: Sequence[Case], index: int, count: int) -> tuple[list[Case], list[int]]:
    """The cases of shard ``index`` of ``count``, in their order, and their positions in ``cases``."""
    shard_of = assign({case_key(c): case_cost(c) for c in cases}, count)
    positions = [p for p, c in enumerate(cases) if shard_of[case_key(c)] == index]
    return [cases[p] for p in positions], positions


def selection_digest(keys: Iterable[str]) -> str:
    """sha256 of the selection's case keys in order: shards made from different selections do not merge."""
    h = hashlib.sha256()
    for key in keys:
        h.update(key.encode("utf-8") + b"\n")
    return h.hexdigest()


def estimated(cases: Sequence[Case], engines: int) -> float:
    return sum(case_cost(c, engines) for c in cases)
