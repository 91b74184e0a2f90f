"""xdist scheduling for a harness run: one case's items on one worker, the big cases first, and a crashed worker's
item reported as crashed while the rest of its work goes on elsewhere (never a hang, never a re-run)."""
from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import pytest

from ..cases.sharding import case_cost

# The oracle reference (and the inputs) of a case is computed once per process (harness.judge.runner.reference), and is
# most of the cost of an oracle or torch item: the items of one case must run in one worker. xdist's `--dist
# loadgroup` with an xdist_group marker did not keep a group on one worker under pytest 9.2 / xdist 3.8, so the
# plugin gives xdist its own scheduler (pytest_xdist_make_scheduler): xdist's LoadScopeScheduling, whose work unit
# is a case (file::id, the engine suffix dropped) instead of a module. tests/frontends/test_xdist_grouping.py proves
# it on a run.

# A case item's node id: FILE.yaml::CASE_ID[ENGINE] (or [schema]), the file's path before the first '::';
# group 1 is the case.
_CASE_NODEID = re.compile(r"^((?:(?!::).)+\.ya?ml::.+)\[[A-Za-z0-9_.-]+(?::[a-z]+)?\]$", re.DOTALL)
# Cases estimated (harness.cases.sharding.case_cost, the cost model sharding splits by) above this many seconds are
# scheduled before every other item, tests included: about 1e7 multiply-adds. The shipped suite has one
# (depthwise-big-same, 2.1e9) against 7e5 for the next.
BIG_CASE_S = 0.05
# The --dist modes that get case scheduling: xdist's default under -n (load), and loadgroup (what `make test` ran
# when it relied on xdist_group markers). each, loadscope, loadfile and worksteal are left to xdist.
CASE_SCHEDULED_DIST = ("load", "loadgroup")


def case_scope(nodeid: str) -> str | None:
    """The case (FILE::ID) of a case item's node id, or None for any other item."""
    m = _CASE_NODEID.match(nodeid)
    return m.group(1) if m else None


def longest_first(items: list[pytest.Item], case_of: Callable[[pytest.Item], Any]) -> list[pytest.Item]:
    """The items reordered for a parallel run: the cases estimated big (BIG_CASE_S) first, largest first, then
    everything else in collection order. A big case scheduled in collection order (cases/depthwise.yaml sits in the
    middle) starts at once instead of last, when the other workers would idle while it runs. One case's items stay
    together, in their order. ``case_of``: an item's case, None for an item that is not a case's."""
    big: dict[str, list[pytest.Item]] = {}
    rest: list[pytest.Item] = []
    for item in items:
        case = case_of(item)
        if case is not None and case_cost(case) >= BIG_CASE_S:
            big.setdefault(case_scope(item.nodeid) or item.nodeid, []).append(item)
        else:
            rest.append(item)
    if not big:
        return items
    units = sorted(big.values(), key=lambda unit: -case_cost(case_of(unit[0])))   # stable: ties keep their order
    return [item for unit in units for item in unit] + rest


_scheduler_class: type | None = None


def case_scheduler_class() -> type:
    """xdist's LoadScopeScheduling with a case as its work unit (imported from xdist on first use)."""
    global _scheduler_class
    if _scheduler_class is None:
        from xdist.scheduler import LoadScopeScheduling

        class CaseScheduling(LoadScopeScheduling):
            """The items of one case go to one worker, in one work unit; every other item is a unit of its own
            (as under --dist load), or of its xdist_group under --dist loadgroup. Units go out in collection
            order (the workers put the big cases first), not reordered by size as LoadScopeScheduling does."""

            def _split_scope(self, nodeid: str) -> str:
                scope = case_scope(nodeid)
                if scope is not None:
                    return scope
                if self.config.getoption("dist") == "loadgroup" and "@" in nodeid:
                    return nodeid.rsplit("@", 1)[-1]   # xdist's own loadgroup suffix
                return nodeid

            def schedule(self) -> None:
                option = self.config.option
                reorder = getattr(option, "loadscopereorder", True)
                option.loadscopereorder = False   # keep collection order: longest first, then as collected
                try:
                    super().schedule()
                finally:
                    option.loadscopereorder = reorder

            def mark_test_complete(self, node: Any, item_index: int, duration: float = 0) -> None:
                """As LoadScopeScheduling's, and a unit whose items are all done is forgotten: every report
                made xdist 3.8 count the pending items of every unit the worker was ever given (_pending_of), a
                million generator steps in the controller over the shipped suite's 1400 cases, on the cores the
                workers need. Nothing reads a finished unit: a crash (remove_node) looks only at what was not done."""
                nodeid = self.registered_collections[node][item_index]
                scope = self._split_scope(nodeid)
                work = self.assigned_work[node]
                work[scope][nodeid] = True
                if all(work[scope].values()):
                    del work[scope]
                self._reschedule(node)

            def _reschedule(self, node: Any) -> None:
                # A replacement worker is in the node list before its collection is in: xdist 3.8 gave it work
                # (KeyError in _assign_work_unit) when another worker's collection came in meanwhile. It is
                # scheduled once its own collection comes in (xdist calls schedule() again then).
                if node in self.registered_collections:
                    super()._reschedule(node)

            def remove_node(self, node: Any) -> str | None:
                """A worker is gone: None if it had finished its work, else the item it crashed on (xdist
                reports that item as failed). LoadScopeScheduling (xdist 3.8) puts the crashed worker's whole
                units back in the queue, items already run and the crashing item included: the item crashes the
                next worker too, and a unit with nothing left to run is sent as an empty batch that is never
                answered, so the run hangs. Here only the items that had not run go back, at the head of the
                queue, in their order; the crashing item is not run again."""
                workload = self.assigned_work.pop(node)   # its collection stays: xdist counts them
                left = [(scope, OrderedDict((nodeid, False) for nodeid, done in unit.items() if not done))
                        for scope, unit in workload.items()]
                left = [(scope, unit) for scope, unit in left if unit]
                if not left:
                    return None
                # A worker runs its units in the order they were sent, and a unit's items in order: the first item
                # not done is the one it was running.
                crashed = next(iter(left[0][1]))
                del left[0][1][crashed]
                # (mypy cannot see xdist's attribute types through the base class imported in this function)
                self.workqueue = OrderedDict([*((s, u) for s, u in left if u),
                                              *self.workqueue.items()])   # type: ignore[has-type]
                for other in self.assigned_work:
                    self._reschedule(other)
                return crashed

        _scheduler_class = CaseScheduling
    return _scheduler_class
