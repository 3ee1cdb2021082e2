"""Why a pending job waits (`pending-reason`), worked out when the API answers.

Every pending job gets one reason, the first that holds:
1. a job it needs (`Runner.waits_for`) is pending or processing: "waiting for dataset X to
   finish";
2. no worker announces itself: "no worker is running";
3. no live worker offers what it needs: "no live worker can run it: none offers engine 'x'";
4. its owner runs as many jobs as one user may: "waiting: you have N jobs running, the most
   allowed (--max-running-jobs-per-user)";
5. else it waits its turn: "waiting for a free worker (N jobs ahead of it: ...)", where the jobs
   ahead are those the workers take first (`startable_order`, the pool's own order), split into
   other users' turns and the owner's own earlier or higher-priority jobs.

The reason is computed, never stored: from the answering process's index of the changes feed
(the worker pool's, or the follower the API process keeps for its gauges), the live presence
documents and the configured cap. Positions move whenever any job starts; writing them into
every pending document would cost one write (and one feed event for every node) per pending job
at every start, while computing them costs one ordering per change of the index
(`benchmarks/pending_reasons.py` measures both).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from elasticthought.documents.fields import CANCEL_REQUESTED, PROCESSING_STATE
from elasticthought.documents.states import ACTIVE
from elasticthought.queue.capabilities import NO_WORKER
from elasticthought.queue.capabilities import pending_reason as capability_reason
from elasticthought.queue.fairness import at_cap, fair_order, owner_of
from elasticthought.queue.registry import PENDING, runner_for

__all__ = ["NO_WORKER", "QueueView", "blocking_dependency", "startable_order"]

CAP_FLAG = "--max-running-jobs-per-user"


def blocking_dependency(doc: dict, active: Mapping[str, Any]) -> tuple[str, str] | None:
    """The first (kind, id) of the jobs `doc` needs that is still in `active` (pending or
    processing job ids), else None."""
    runner = runner_for(doc.get("type"))
    if runner is None:
        return None
    for what, dep_id in runner.waits_for(doc):
        if dep_id in active:
            return what, dep_id
    return None


def startable_order(
    pending: Iterable[dict],
    running: Mapping[str, int],
    last_started: Mapping[str, float],
    cap: int,
    active: Mapping[str, Any],
) -> list[dict]:
    """The pending jobs a worker may take now, in the order it takes them: fair order without
    jobs whose cancel was asked, whose owner is at the cap or that wait for another job."""
    return [
        doc
        for doc in fair_order(pending, running, last_started)
        if runner_for(doc.get("type")) is not None
        and not doc.get(CANCEL_REQUESTED)
        and not at_cap(owner_of(doc), running, cap)
        and blocking_dependency(doc, active) is None
    ]


def cap_reason(running: int) -> str:
    return (
        f"waiting: you have {running} job{'s' if running != 1 else ''} running, "
        f"the most allowed ({CAP_FLAG})"
    )


def turn_reason(ahead: list[dict], owner: str) -> str:
    """ "waiting for a free worker (N jobs ahead of it: ...)" for the jobs `ahead`."""
    if not ahead:
        return "waiting for a free worker (next in line)"
    own = sum(1 for d in ahead if owner_of(d) == owner)
    others = len(ahead) - own
    parts = []
    if others:
        parts.append(f"{others} of other users, whose turn comes first")
    if own:
        parts.append(f"{own} of yours, of higher priority or submitted earlier")
    n = len(ahead)
    return f"waiting for a free worker ({n} job{'s' if n != 1 else ''} ahead of it: " + (
        "; ".join(parts) + ")"
    )


class QueueView:
    """One answer's look at the queue: the index (a `pool.JobIndex`: pending and processing
    documents of every node, from the changes feed), the live workers and the cap. Orders
    are computed once per change of the index and shared by every answer until the next."""

    _cache_lock = threading.Lock()
    _cache: dict[tuple[int, int], tuple[int, list[dict]]] = {}  # (index, cap) -> version, order

    def __init__(self, index: Any, workers: list[dict], cap: int, store: Any = None) -> None:
        self.index = index  # None: no index at hand, dependencies are read from `store`
        self.store = store
        self.caps = [w.get("capabilities") or {} for w in workers]
        self.cap = max(0, int(cap or 0))
        self._order: list[dict] | None = None
        self._positions: dict[str, int] | None = None

    def _snapshot(self) -> tuple[int, dict, dict, Counter, dict]:
        with self.index.cond:
            return (
                self.index.version,
                dict(self.index.pending),
                dict(self.index.processing),
                self.index.running_by_owner(),
                dict(self.index.last_started),
            )

    def order(self) -> list[dict]:
        if self._order is None:
            version, pending, processing, running, last = self._snapshot()
            key = (id(self.index), self.cap)
            with self._cache_lock:
                cached = self._cache.get(key)
            if cached is not None and cached[0] == version:
                self._order = cached[1]
            else:
                active = {**pending, **processing}
                self._order = startable_order(pending.values(), running, last, self.cap, active)
                with self._cache_lock:
                    self._cache[key] = (version, self._order)
            self._positions = {d["_id"]: n for n, d in enumerate(self._order)}
        return self._order

    def reason(self, doc: dict) -> str | None:
        """Why `doc` waits (None when it is not a pending job of a known type)."""
        runner = runner_for(doc.get("type"))
        if runner is None or doc.get(PROCESSING_STATE) != PENDING:
            return None
        if self.index is None:
            active, running = self._active_from_store(doc), Counter()
        else:
            with self.index.cond:
                active = {**self.index.pending, **self.index.processing}
                running = self.index.running_by_owner()
        blocked = blocking_dependency(doc, active)
        if blocked is not None:
            return f"waiting for {blocked[0]} {blocked[1]} to finish"
        if not self.caps:
            return NO_WORKER
        try:
            unrunnable = capability_reason(self.caps, runner.needs(doc))
        except Exception:  # noqa: BLE001 - a malformed document: its runner will say why
            unrunnable = None
        if unrunnable:
            return unrunnable
        owner = owner_of(doc)
        if at_cap(owner, running, self.cap):
            return cap_reason(running[owner])
        if self.index is None:
            return "waiting for a free worker"
        order = self.order()
        position = (self._positions or {}).get(doc["_id"])
        if position is None:  # not in this process's index yet (just submitted)
            return "waiting for a free worker"
        return turn_reason(order[:position], owner)

    def _active_from_store(self, doc: dict) -> dict[str, bool]:
        """Which of the jobs `doc` needs are pending or processing, read from the store."""
        runner = runner_for(doc.get("type"))
        active: dict[str, bool] = {}
        for _, dep_id in runner.waits_for(doc) if runner and self.store is not None else []:
            try:
                state = self.store.get(dep_id).get(PROCESSING_STATE)
            except Exception:  # noqa: BLE001 - gone or unreadable: not something to wait for
                continue
            if state in ACTIVE:
                active[dep_id] = True
        return active
