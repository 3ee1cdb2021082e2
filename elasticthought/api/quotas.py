"""Per-user quotas checked before a request does any work: how many jobs one user may have
waiting or running in the queue (`--max-queued-jobs-per-user`, answered 429 naming it) and how
many bytes of uploads and results one user keeps in the blob store
(`--max-stored-bytes-per-user`, an upload or model download past it answered 413 naming it;
the rule itself is `elasticthought.storage_quota`)."""

from __future__ import annotations

from elasticthought.api.errors import ApiError
from elasticthought.api.ownership import user_id
from elasticthought.api.services import blobs, config, store
from elasticthought.documents.fields import (
    CLASSIFY_JOB,
    DATAFILE,
    DATASET,
    PROCESSING_STATE,
    TRAINING_JOB,
)
from elasticthought.documents.states import FINAL_STATES
from elasticthought.storage_quota import QuotaExceeded, check_stored_bytes, quota_text, room_left

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


def check_storage_quota(incoming: int | None, what: str = "this upload") -> None:
    """Refuse (413) storing `incoming` more bytes for the caller past their stored-bytes quota
    (the rule: `elasticthought.storage_quota`)."""
    try:
        check_stored_bytes(
            blobs(), user_id(), config().max_stored_bytes_per_user, incoming or 0, what
        )
    except QuotaExceeded as exc:
        raise ApiError(413, str(exc)) from None


def storage_room() -> int | None:
    """Bytes the caller may still store (None: no quota)."""
    return room_left(blobs(), user_id(), config().max_stored_bytes_per_user)


def quota_error(room: int, incoming: int, what: str) -> ApiError:
    """The 413 of `what` (`incoming` bytes) not fitting in the caller's `room`."""
    limit = config().max_stored_bytes_per_user
    return ApiError(413, quota_text(limit, limit - room, incoming, what))
