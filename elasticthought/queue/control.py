"""Compare-and-swap state transitions of job documents (every writer retries on conflict).

A transition reads the current document, checks that it still holds (so a progress write never
overwrites a cancel and a cancel never overwrites a final state) and writes with the revision it
read. Workers add a `claim-id` on claim: a later write by that worker only lands while the job
still carries its claim (fencing).
"""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Callable
from typing import Any

from elasticthought.documents.fields import (
    ATTEMPTS,
    CANCEL_REQUESTED,
    CLAIM_ID,
    FINISHED_AT,
    LEASE_EXPIRES,
    PROCESSING_LOG,
    PROCESSING_STATE,
    STARTED_AT,
    WORKER_ID,
)
from elasticthought.documents.status import PENDING_REASON, RUN_FIELDS
from elasticthought.metrics import hooks as metrics
from elasticthought.queue.registry import (
    CANCELED,
    FAILED,
    FINAL_STATES,
    PENDING,
    PROCESSING,
)
from elasticthought.store.base import Conflict, NotFound, Store


def _drop(doc: dict, keys: tuple[str, ...]) -> None:
    for key in keys:
        doc.pop(key, None)


def _modify(store: Store, job_id: str, change: Callable[[dict], bool]) -> dict | None:
    """`store.modify(job_id, change)`; None when the job document is gone."""
    try:
        return store.modify(job_id, change)
    except NotFound:
        return None


def _written(doc: dict | None, requeue_reason: str | None = None) -> dict | None:
    """Record a transition's result in the metrics; return it."""
    metrics.job_written(doc, requeue_reason)
    return doc


def request_cancel(store: Store, job_id: str) -> dict | None:
    """Ask for a job's cancel: a pending job is `canceled` at once; a running one gets
    `cancel-requested` (its worker ends it within seconds); a final state is left alone.
    Returns the document as written (None when it was already final). `NotFound` propagates."""

    def change(doc: dict) -> bool:
        state = doc.get(PROCESSING_STATE)
        if state in FINAL_STATES:
            return False
        doc[CANCEL_REQUESTED] = True
        if state != PROCESSING:
            doc[PROCESSING_STATE] = CANCELED
            doc[FINISHED_AT] = time.time()
            doc.pop(PENDING_REASON, None)
            _drop(doc, RUN_FIELDS)
        return True

    doc = store.modify(job_id, change)
    metrics.job_written(doc)
    return doc


def claim(
    store: Store, job_id: str, worker_id: str, lease_seconds: float, seen: dict | None = None
) -> dict | None:
    """Take a pending job: `processing`, this worker, a lease, one more attempt. One try, no
    retry: the loser of a race gets None and moves on (so does a job no longer pending).
    `seen` is the document as last read (saves a read; a stale revision is a lost race)."""
    if seen is not None:
        doc = copy.deepcopy(seen)
    else:
        try:
            doc = store.get(job_id)
        except NotFound:
            return None
    if doc.get(PROCESSING_STATE) != PENDING:
        return None
    if doc.get(CANCEL_REQUESTED):
        cancel_pending(store, job_id)
        return None
    now = time.time()
    doc[PROCESSING_STATE] = PROCESSING
    doc[WORKER_ID] = worker_id
    doc[CLAIM_ID] = uuid.uuid4().hex
    doc[LEASE_EXPIRES] = now + lease_seconds
    doc[ATTEMPTS] = int(doc.get(ATTEMPTS) or 0) + 1
    doc[STARTED_AT] = now
    doc.pop(PENDING_REASON, None)
    doc.pop(FINISHED_AT, None)
    try:
        written = store.update(doc)
    except (Conflict, NotFound):
        return None
    metrics.job_claimed(written)
    return written


def cancel_pending(store: Store, job_id: str) -> dict | None:
    """End a pending job whose cancel was requested."""

    def change(doc: dict) -> bool:
        if doc.get(PROCESSING_STATE) != PENDING or not doc.get(CANCEL_REQUESTED):
            return False
        doc[PROCESSING_STATE] = CANCELED
        doc[FINISHED_AT] = time.time()
        doc.pop(PENDING_REASON, None)
        return True

    return _written(_modify(store, job_id, change))


def holds(doc: dict, claim_id: str) -> bool:
    """Whether the document is still processing under this claim."""
    return doc.get(PROCESSING_STATE) == PROCESSING and doc.get(CLAIM_ID) == claim_id


def renew(
    store: Store, job_id: str, claim_id: str, lease_seconds: float, progress: dict[str, Any]
) -> dict | None:
    """Extend the lease and merge progress fields; None when the claim was lost (fenced)."""

    def change(doc: dict) -> bool:
        if not holds(doc, claim_id):
            return False
        doc.update(progress)
        doc[LEASE_EXPIRES] = time.time() + lease_seconds
        return True

    return _modify(store, job_id, change)


def finish(
    store: Store, job_id: str, claim_id: str, state: str, fields: dict[str, Any]
) -> dict | None:
    """Write the final state under the claim; None when the claim was lost (fenced)."""

    def change(doc: dict) -> bool:
        if not holds(doc, claim_id):
            return False
        doc.update(fields)
        doc[PROCESSING_STATE] = state
        doc[FINISHED_AT] = time.time()
        _drop(doc, (LEASE_EXPIRES,))
        return True

    return _written(_modify(store, job_id, change))


def _back_to_pending(doc: dict) -> bool:
    """A claimed job given back before its end: `pending` with the attempt not counted (True),
    or `canceled` when a cancel was requested (False); the run's fields dropped."""
    if doc.get(CANCEL_REQUESTED):
        doc[PROCESSING_STATE] = CANCELED
        doc[FINISHED_AT] = time.time()
        pending = False
    else:
        doc[PROCESSING_STATE] = PENDING
        doc[ATTEMPTS] = max(0, int(doc.get(ATTEMPTS) or 1) - 1)
        pending = True
    _drop(doc, RUN_FIELDS)
    return pending


def release(store: Store, job_id: str, claim_id: str, progress: dict[str, Any]) -> dict | None:
    """Give a running job back (shutdown): `pending`, lease released, attempt not counted."""

    def change(doc: dict) -> bool:
        if not holds(doc, claim_id):
            return False
        doc.update(progress)
        worker = doc.get(WORKER_ID)
        if _back_to_pending(doc):
            doc["retry-reason"] = f"worker {worker} shut down"
        return True

    return _written(_modify(store, job_id, change), requeue_reason="shutdown")


def unclaim(store: Store, job_id: str, claim_id: str) -> dict | None:
    """Undo a claim before the job started (its owner turned out to be at the running-jobs
    cap): `pending` again, the attempt not counted. None when the claim was lost."""

    def change(doc: dict) -> bool:
        if not holds(doc, claim_id):
            return False
        if _back_to_pending(doc):
            doc.pop(STARTED_AT, None)
        return True

    return _written(_modify(store, job_id, change))


def recover_expired(store: Store, job_id: str, max_attempts: int) -> dict | None:
    """Return a job whose lease expired to `pending` (or `failed` past `max_attempts`;
    `canceled` when a cancel was requested). None when the lease is alive after all."""

    def change(doc: dict) -> bool:
        if doc.get(PROCESSING_STATE) != PROCESSING:
            return False
        if float(doc.get(LEASE_EXPIRES) or 0) > time.time():
            return False
        attempts = int(doc.get(ATTEMPTS) or 1)
        lost = f"lease of worker {doc.get(WORKER_ID)} expired (worker lost)"
        if doc.get(CANCEL_REQUESTED):
            doc[PROCESSING_STATE] = CANCELED
            doc[FINISHED_AT] = time.time()
        elif attempts >= max_attempts:
            doc[PROCESSING_STATE] = FAILED
            doc[PROCESSING_LOG] = f"{lost}; gave up after {attempts} attempts"
            doc[FINISHED_AT] = time.time()
        else:
            doc[PROCESSING_STATE] = PENDING
            doc["retry-reason"] = f"{lost} on attempt {attempts}; retrying"
        _drop(doc, RUN_FIELDS)
        return True

    return _written(_modify(store, job_id, change), requeue_reason="lease_expired")
