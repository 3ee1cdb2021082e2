"""Per-user quotas checked before a request does any work: how many jobs one user may have
waiting or running in the queue (`--max-queued-jobs-per-user`, answered 429 naming it) and how
many bytes of uploads and results one user keeps in the blob store
(`--max-stored-bytes-per-user`, an upload past it answered 413 naming it)."""

from __future__ import annotations

from elasticthought.api.errors import ApiError
from elasticthought.api.ownership import user_id
from elasticthought.api.services import blobs, config, store
from elasticthought.blobs import layout
from elasticthought.documents.fields import (
    CLASSIFIER,
    CLASSIFY_JOB,
    DATAFILE,
    DATASET,
    PROCESSING_STATE,
    TRAINING_JOB,
)
from elasticthought.documents.states import FINAL_STATES
from elasticthought.store.base import id_prefix

JOB_TYPES = (DATAFILE, DATASET, TRAINING_JOB, CLASSIFY_JOB)


def active_jobs(owner: str) -> int:
    """The owner's jobs of every kind that have not ended (pending or processing)."""
    return sum(
        1
        for doc_type in JOB_TYPES
        for doc in store().list(doc_type, owner=owner, limit=None)
        if doc.get(PROCESSING_STATE) not in FINAL_STATES
    )


def check_queue_quota() -> None:
    """Refuse one more job (429) when the caller already has the most the queue takes."""
    limit = config().max_queued_jobs_per_user
    if limit > 0 and active_jobs(user_id()) >= limit:
        raise ApiError(
            429,
            f"you already have {limit} jobs waiting or running, the most allowed "
            "(--max-queued-jobs-per-user); wait for some to end or cancel them",
        )


BLOB_TYPES = (DATAFILE, DATASET, TRAINING_JOB, CLASSIFIER, CLASSIFY_JOB)


def stored_bytes(owner: str) -> int:
    """Bytes the owner's documents keep in the blob store."""
    total = 0
    for doc_type in BLOB_TYPES:
        for key in blobs().list(layout.prefix(id_prefix(doc_type, owner))[:-1]):
            total += blobs().size(key)
    return total


def check_storage_quota(incoming: int | None) -> None:
    """Refuse an upload (413) that would take the caller past their stored-bytes quota."""
    limit = config().max_stored_bytes_per_user
    if limit <= 0:
        return
    used = stored_bytes(user_id())
    if used + max(0, incoming or 0) > limit:
        raise ApiError(
            413,
            f"this upload would take your stored data past {limit} bytes "
            f"(--max-stored-bytes-per-user; {used} bytes used): delete something first",
        )
