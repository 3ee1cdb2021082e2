"""The order in which pending jobs are taken: priority, then owners in turn, then age.

Higher `priority` first. Among equal priorities, owners take turns: the owner with the fewest
running jobs goes first, ties broken by who started a job least recently, then by the age of the
owner's oldest waiting job. One owner's jobs keep their submission order.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping

from elasticthought.documents.fields import CREATED_AT, USER_ID


def priority_of(doc: dict) -> int:
    try:
        return int(doc.get("priority") or 0)
    except (TypeError, ValueError):
        return 0


def age_key(doc: dict) -> tuple[float, str]:
    """Submission order: `created-at`, then the (time-sortable) id."""
    try:
        created = float(doc.get(CREATED_AT) or 0.0)
    except (TypeError, ValueError):
        created = 0.0
    return (created, str(doc.get("_id", "")))


def owner_of(doc: dict) -> str:
    return str(doc.get(USER_ID) or "")


def fair_order(
    pending: Iterable[dict],
    running: Mapping[str, int] | None = None,
    last_started: Mapping[str, float] | None = None,
) -> list[dict]:
    """All `pending` jobs in the order workers should try them."""
    running = dict(running or {})
    # (0, time) for starts seen; (1, turn) for starts this ordering assumes, later than any.
    last: dict[str, tuple[int, float]] = {o: (0, t) for o, t in (last_started or {}).items()}
    levels: dict[int, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for doc in pending:
        levels[priority_of(doc)][owner_of(doc)].append(doc)
    order: list[dict] = []
    turn = 0
    for level in sorted(levels, reverse=True):
        queues = {owner: sorted(docs, key=age_key) for owner, docs in levels[level].items()}
        while queues:
            never = (0, -math.inf)
            owner = min(
                queues,
                key=lambda o, q=queues: (running.get(o, 0), last.get(o, never), age_key(q[o][0])),
            )
            order.append(queues[owner].pop(0))
            if not queues[owner]:
                del queues[owner]
            running[owner] = running.get(owner, 0) + 1
            turn += 1
            last[owner] = (1, turn)
    return order
