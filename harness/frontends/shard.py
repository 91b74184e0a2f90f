"""pytest plug-in: ``--shard I/N`` runs shard I of N of the selected items (harness.cases.sharding: a deterministic
split, every item of a case in one shard, greedy by estimated cost). N jobs with I = 1..N run every item exactly once.

Registered with ``-p harness.frontends.shard`` on the command line, or ``pytest_plugins = ["harness.frontends.shard"]``
in a plug-in module or the rootdir's conftest.py.
"""
from __future__ import annotations

from typing import Any

import pytest

from ..cases.sharding import TEST_ITEM_S, assign, case_cost, case_key, parse

SHARD = pytest.StashKey[tuple]()         # (index, count) of this run
SHARD_STATS = pytest.StashKey[tuple]()   # (items kept, items selected, estimated s kept, estimated s selected)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness", "convolution equivalence harness")
    group.addoption("--shard", default=None, metavar="I/N",
                    help="run only shard I of N (1 <= I <= N): a deterministic split of the selected items, every "
                         "item of a case in one shard, greedy by estimated cost; N jobs with I = 1..N run every "
                         "item once")


def pytest_configure(config: pytest.Config) -> None:
    value = config.getoption("shard", None)
    if value is not None:
        try:
            config.stash[SHARD] = parse(value)
        except ValueError as exc:
            raise pytest.UsageError(str(exc)) from exc


def group_of(item: pytest.Item) -> tuple[str, float]:
    """(the group an item belongs to, its estimated cost): a case's items together (its reference is computed once
    per process), a test module's together (its module fixtures run once)."""
    case = getattr(item, "case", None)
    if case is not None and getattr(case, "file", None) is not None and getattr(case, "id", None) is not None:
        return case_key(case), case_cost(case)
    return item.nodeid.split("::")[0], TEST_ITEM_S


# trylast: after the other plug-ins' selection (-k, -m, --deselect), so that the split balances what will run.
@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    if SHARD not in config.stash:
        return
    index, count = config.stash[SHARD]
    costs: dict[str, float] = {}
    groups = []
    for item in items:
        key, cost = group_of(item)
        costs[key] = costs.get(key, 0.0) + cost
        groups.append(key)
    shard_of = assign(costs, count)
    keep = [it for it, key in zip(items, groups) if shard_of[key] == index]
    dropped = [it for it, key in zip(items, groups) if shard_of[key] != index]
    config.stash[SHARD_STATS] = (len(keep), len(items), sum(c for k, c in costs.items() if shard_of[k] == index),
                                 sum(costs.values()))
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    items[:] = keep


def pytest_report_collectionfinish(config: pytest.Config, start_path: Any, items: list[pytest.Item]) -> list[str]:
    if SHARD not in config.stash or SHARD_STATS not in config.stash:
        return []
    (index, count), (kept, total, cost, all_cost) = config.stash[SHARD], config.stash[SHARD_STATS]
    return [f"shard {index}/{count}: {kept} of {total} items (estimated {cost:.1f} s of {all_cost:.1f} s)"]
