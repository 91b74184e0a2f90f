"""Shards of a fuzz campaign: each shard's budget and seeds, its JSON summary, and merging the summaries."""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from typing import Any

from .. import engines as engine_registry
from ..cases.sharding import check_complete
from .stats import Stats

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
