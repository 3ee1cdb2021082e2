"""The job queue: runners per document type, a worker pool over the changes feed.

It knows job documents (`elasticthought.documents`) but neither the API nor the runners nor
an engine's internals: runner modules are imported by name, engines probed through
`elasticthought.engine.registry`. `execution.JobRun` runs one claimed job as named steps
(prepare_job_execution, perform_job, handle_job_success / handle_job_failure, handle_job_end).

Public surface:
- `register_runner(doc_type, "module:function", requirements=None)`, `RUNNERS`, `JobError`
  (registry.py) and `JobContext` (context.py): what a job runner is and sees;
- `WorkerPool(config, store, blobs)` with `.start()` / `.stop(grace)` (pool.py);
- `request_cancel(store, job_id)` (control.py), `list_workers(store)` (presence.py),
  `probe_capabilities(config)` and `explain_pending(store, doc, index, cap)` (why a pending job
  waits, reasons.py) for the API.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from elasticthought.documents.fields import PROCESSING_STATE

# Light names load at once; the pool and the store-facing helpers load on first use, so that a
# job's child process (which imports elasticthought.queue.child) starts quickly.
from elasticthought.queue.context import JobContext
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

_LAZY = {
    "WorkerPool": "elasticthought.queue.pool",
    "request_cancel": "elasticthought.queue.control",
    "list_workers": "elasticthought.queue.presence",
    "probe_capabilities": "elasticthought.queue.capabilities",
    "pending_reason": "elasticthought.queue.capabilities",
}

if TYPE_CHECKING:
    from elasticthought.queue.capabilities import pending_reason, probe_capabilities
    from elasticthought.queue.control import request_cancel
    from elasticthought.queue.pool import WorkerPool
    from elasticthought.queue.presence import list_workers


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def explain_pending(store: Any, doc: dict, index: Any = None, cap: int = 0) -> str | None:
    """Why a pending job waits (None: not a pending job of a registered type). `index`: a
    `pool.JobIndex` of the changes feed (without one, the job's place in the queue and its
    owner's running jobs are unknown); `cap`: `--max-running-jobs-per-user`."""
    from elasticthought.queue.presence import list_workers
    from elasticthought.queue.reasons import QueueView

    if runner_for(doc.get("type")) is None or doc.get(PROCESSING_STATE) != PENDING:
        return None
    workers = list_workers(store, alive_only=True)
    return QueueView(index, workers, cap, store).reason(doc)


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
    "pending_reason",
    "probe_capabilities",
    "register_runner",
    "request_cancel",
]
