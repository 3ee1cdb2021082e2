"""The order in which pending jobs are taken: owners in turn; within one owner, priority, then
age.

A user's running jobs are capped (`--max-running-jobs-per-user`, `at_cap`): workers skip the
jobs of an owner at the cap, whose jobs wait while other users' jobs run.

Owners take turns: the owner with the fewest running jobs goes first, ties broken by who started
a job least recently, then by the age of the owner's oldest waiting job. `priority` (bounded,
`limits.PRIORITY_MIN`..`PRIORITY_MAX`) orders only its owner's own jobs, higher first, so no
priority moves a job ahead of another user's turn. Equal priorities keep submission order.
"""

from __future__ import annotations

import heapq
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping

from elasticthought.documents.fields import CREATED_AT, USER_ID
from elasticthought.limits import PRIORITY_MAX, PRIORITY_MIN


def priority_of(doc: dict) -> int:
    """The job's priority, clamped to the documented range."""
    try:
        value = int(doc.get("priority") or 0)
    except (TypeError, ValueError, OverflowError):
        return 0
    return max(PRIORITY_MIN, min(PRIORITY_MAX, value))


def own_order_key(doc: dict) -> tuple[int, tuple[float, str]]:
    """Order of one owner's jobs: higher priority first, then submission order."""
    return (-priority_of(doc), age_key(doc))


def age_key(doc: dict) -> tuple[float, str]:
    """Submission order: `created-at`, then the (time-sortable) id."""
    try:
        created = float(doc.get(CREATED_AT) or 0.0)
    except (TypeError, ValueError):
        created = 0.0
    return (created, str(doc.get("_id", "")))


def owner_of(doc: dict) -> str:
    return str(doc.get(USER_ID) or "")


def at_cap(owner: str, running: Mapping[str, int], cap: int) -> bool:
    """Whether `owner` runs as many jobs as one user may (`cap` 0 = no cap)."""
    return cap > 0 and running.get(owner, 0) >= cap


def fair_order(
    pending: Iterable[dict],
    running: Mapping[str, int] | None = None,
    last_started: Mapping[str, float] | None = None,
) -> list[dict]:
    """All `pending` jobs in the order workers should try them (O(n log n): the owners wait
    in a heap keyed by their turn)."""
    running = dict(running or {})
    by_owner: dict[str, list[dict]] = defaultdict(list)
    for doc in pending:
        by_owner[owner_of(doc)].append(doc)
    never = (0, -math.inf)
    # (running, last start, oldest waiting job): a start seen is (0, time); a turn this
    # ordering gives is (1, turn), later than any seen; after its first turn an owner's last
    # start is unique, so the oldest job only breaks ties among owners yet to have a turn.
    heap = []
    for owner, docs in by_owner.items():
        docs.sort(key=own_order_key, reverse=True)  # pop() takes the first in order
        last = (0, float(last_started[owner])) if last_started and owner in last_started else never
        heap.append((running.get(owner, 0), last, min(map(age_key, docs)), owner))
    heapq.heapify(heap)
    order: list[dict] = []
    turn = 0
    while heap:
        count, _, oldest, owner = heapq.heappop(heap)
        docs = by_owner[owner]
        order.append(docs.pop())
        turn += 1
        if docs:
            heapq.heappush(heap, (count + 1, (1, turn), oldest, owner))
    return order
