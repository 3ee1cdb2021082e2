"""Per-user quotas checked before a request does any work: how many jobs one user may have
waiting or running in the queue (`--max-queued-jobs-per-user`, answered 429 naming it)."""

from __future__ import annotations

from elasticthought.api.errors import ApiError
from elasticthought.api.ownership import user_id
from elasticthought.api.services import config, store
from elasticthought.documents.fields import (
    CLASSIFY_JOB,
    DATAFILE,
    DATASET,
    PROCESSING_STATE,
    TRAINING_JOB,
)
from elasticthought.documents.states import FINAL_STATES

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
