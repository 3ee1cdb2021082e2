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
    """All `pending` jobs in the order workers should try them."""
    running = dict(running or {})
    # (0, time) for starts seen; (1, turn) for starts this ordering assumes, later than any.
    last: dict[str, tuple[int, float]] = {o: (0, t) for o, t in (last_started or {}).items()}
    by_owner: dict[str, list[dict]] = defaultdict(list)
    for doc in pending:
        by_owner[owner_of(doc)].append(doc)
    queues = {owner: sorted(docs, key=own_order_key) for owner, docs in by_owner.items()}
    order: list[dict] = []
    turn = 0
    never = (0, -math.inf)
    while queues:
        owner = min(
            queues,
            key=lambda o: (running.get(o, 0), last.get(o, never), min(map(age_key, queues[o]))),
        )
        order.append(queues[owner].pop(0))
        if not queues[owner]:
            del queues[owner]
        running[owner] = running.get(owner, 0) + 1
        turn += 1
        last[owner] = (1, turn)
    return order
