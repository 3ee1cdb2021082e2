"""`pending-reason` on the answers about jobs: why each pending job waits (queue/reasons.py),
computed when answering from this process's index of the changes feed (the worker pool's when
this process runs one, else the follower this process keeps for its state gauges)."""

from __future__ import annotations

import logging
from typing import Any

from flask import current_app

from elasticthought.api.app import get_services
from elasticthought.documents.fields import PROCESSING_STATE
from elasticthought.documents.states import PENDING
from elasticthought.documents.status import PENDING_REASON
from elasticthought.queue.presence import list_workers
from elasticthought.queue.reasons import QueueView

log = logging.getLogger(__name__)

METRICS_HOLDER = "elasticthought.metrics.holder"  # where metrics.attach keeps its signal
INDEX_READY_WAIT = 5.0  # a first answer waits this long for the follower's first full read


def _index() -> Any:
    """This process's `JobIndex` of the changes feed (None when it has none)."""
    services = get_services()
    if services.pool is not None:
        return services.pool.index
    holder = current_app.extensions.get(METRICS_HOLDER)
    signal = holder.get() if holder is not None else None
    if signal is None:
        return None
    signal.caught_up.wait(INDEX_READY_WAIT)
    return signal.index


def queue_view() -> QueueView:
    """The queue as this answer sees it (one per request: it reads the presence documents)."""
    services = get_services()
    workers = list_workers(services.store, alive_only=True)
    return QueueView(_index(), workers, services.config.max_running_jobs_per_user, services.store)


def add_reasons(items: list[dict[str, Any]], docs: list[dict] | None = None) -> None:
    """Set `pending-reason` on every pending item (answers of `public`; `docs`: the stored
    documents they show, when they differ); other items carry none."""
    view: QueueView | None = None
    for n, item in enumerate(items):
        item.pop(PENDING_REASON, None)
        doc = docs[n] if docs is not None else {**item, "_id": item.get("id")}
        if doc.get(PROCESSING_STATE) != PENDING:
            continue
        try:
            view = view or queue_view()
            reason = view.reason(doc)
        except Exception:  # noqa: BLE001 - an answer never fails for want of a reason
            log.exception("pending reason of %s", doc.get("_id"))
            reason = "waiting for a free worker"
        if reason:
            item[PENDING_REASON] = reason


def with_reason(out: dict[str, Any], doc: dict) -> dict[str, Any]:
    """`out` (the answer about `doc`) with its `pending-reason` when `doc` is pending."""
    add_reasons([out], [doc])
    return out
