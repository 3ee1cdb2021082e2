"""The job queue (DESIGN.md §4): runners per document type, a worker pool over the changes feed.

Public surface:
- `register_runner(doc_type, "module:function", requirements=None)`, `RUNNERS`, `JobError`
  (registry.py) and `JobContext` (context.py): what a job runner is and sees;
- `WorkerPool(config, store, blobs)` with `.start()` / `.stop(grace)` (pool.py);
- `request_cancel(store, job_id)` (control.py), `list_workers(store)` (presence.py),
  `probe_capabilities(config)` and `explain_pending(store, doc)` for the API.
"""

from __future__ import annotations

from elasticthought.queue.capabilities import pending_reason, probe_capabilities
from elasticthought.queue.context import JobContext
from elasticthought.queue.control import request_cancel
from elasticthought.queue.pool import WorkerPool
from elasticthought.queue.presence import list_workers
from elasticthought.queue.registry import (
    CANCELED,
    FAILED,
    FINAL_STATES,
    FINISHED,
    PENDING,
    PROCESSING,
    RUNNERS,
    JobError,
    register_runner,
    runner_for,
)
from elasticthought.store.base import Store


def explain_pending(store: Store, doc: dict) -> str | None:
    """Why a pending job is waiting for lack of a capable live worker (None: someone can run
    it, or it is not a pending job of a registered type)."""
    runner = runner_for(doc.get("type"))
    if runner is None or doc.get("processing-state") != PENDING:
        return None
    caps = [w.get("capabilities") or {} for w in list_workers(store, alive_only=True)]
    return pending_reason(caps, runner.needs(doc))


__all__ = [
    "CANCELED",
    "FAILED",
    "FINAL_STATES",
    "FINISHED",
    "PENDING",
    "PROCESSING",
    "RUNNERS",
    "JobContext",
    "JobError",
    "WorkerPool",
    "explain_pending",
    "list_workers",
    "probe_capabilities",
    "register_runner",
    "request_cancel",
]
