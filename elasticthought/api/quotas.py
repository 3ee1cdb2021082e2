"""Per-user quotas checked before a request does any work: how many jobs one user may have
waiting or running in the queue (`--max-queued-jobs-per-user`, answered 429 naming it) and how
many bytes of uploads and results one user keeps in the blob store
(`--max-stored-bytes-per-user`, an upload or model download past it answered 413 naming it;
the rule itself is `elasticthought.storage_quota`). Both count what the user's other requests
in this process are adding at the same moment (`RESERVATIONS`): a burst of concurrent requests
gets exactly the room one request at a time would."""

from __future__ import annotations

import threading
from collections import Counter

from flask import g

from elasticthought.api.errors import ApiError
from elasticthought.api.ownership import user_id
from elasticthought.api.services import blobs, config, store
from elasticthought.documents import model
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


class _Reservations:
    """What this process's requests are adding for each owner (bytes being stored, jobs being
    created), reserved from the check of the quota to the end of the request, so concurrent
    requests of one user are checked against each other, not each against the same room.
    One lock per (owner, kind) serializes the checks; each request gives back what it took
    at its teardown (`release_reservations`), when what it added is in the stores."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self.amounts: Counter[tuple[str, str]] = Counter()

    def lock(self, key: tuple[str, str]) -> threading.Lock:
        with self._lock:
            return self._locks.setdefault(key, threading.Lock())  # (kept: a thread may wait)

    def add(self, key: tuple[str, str], amount: int) -> None:
        with self._lock:
            self.amounts[key] += amount
        g.setdefault(_REQUEST_KEY, []).append((key, amount))

    def take_back(self, key: tuple[str, str], amount: int) -> None:
        """Give back what this request reserved before its end (it is in the store now)."""
        held = g.get(_REQUEST_KEY, [])
        if (key, amount) in held:
            held.remove((key, amount))
            self.release(key, amount)

    def release(self, key: tuple[str, str], amount: int) -> None:
        with self._lock:
            self.amounts[key] -= amount
            if self.amounts[key] <= 0:
                del self.amounts[key]


RESERVATIONS = _Reservations()
_REQUEST_KEY = "quota_reservations"
JOBS, BYTES = "jobs", "bytes"


def check_queue_quota() -> None:
    """Refuse one more job (429) when the caller already has the most the queue takes
    (counting the jobs their other requests are creating); else reserve it."""
    limit = config().max_queued_jobs_per_user
    if limit <= 0:
        return
    key = (user_id(), JOBS)
    with RESERVATIONS.lock(key):
        if active_jobs(key[0]) + RESERVATIONS.amounts[key] >= limit:
            raise ApiError(
                429,
                f"you already have {limit} jobs waiting or running, the most allowed "
                "(--max-queued-jobs-per-user); wait for some to end or cancel them",
            )
        RESERVATIONS.add(key, 1)


def submit_job(doc: dict) -> dict:
    """Queue the job `doc` (`model.submit`) and give back the slot `check_queue_quota`
    reserved for it, both under the owner's lock, so a concurrent check counts the job once:
    reserved or in the store."""
    key = (user_id(), JOBS)
    with RESERVATIONS.lock(key):
        created = model.submit(store(), doc)
        RESERVATIONS.take_back(key, 1)
    return created


def check_storage_quota(
    incoming: int | None, what: str = "this upload", ignore: tuple[str, ...] = ()
) -> None:
    """Refuse (413) storing `incoming` more bytes for the caller past their stored-bytes quota
    (the rule: `elasticthought.storage_quota`), counting the bytes their other requests are
    storing meanwhile; else reserve them. `ignore`: blob keys left out of the usage (already
    written by this request)."""
    limit = config().max_stored_bytes_per_user
    if limit <= 0:
        return
    key = (user_id(), BYTES)
    amount = max(0, incoming or 0)
    with RESERVATIONS.lock(key):
        try:
            check_stored_bytes(
                blobs(), key[0], limit, amount, what, ignore, RESERVATIONS.amounts[key]
            )
        except QuotaExceeded as exc:
            raise ApiError(413, str(exc)) from None
        RESERVATIONS.add(key, amount)


def release_reservations(_exc: BaseException | None = None) -> None:
    """(Teardown of every request) give back what its quota checks reserved."""
    for key, amount in g.pop(_REQUEST_KEY, []):
        RESERVATIONS.release(key, amount)


def storage_room() -> int | None:
    """Bytes the caller may still store (None: no quota)."""
    return room_left(blobs(), user_id(), config().max_stored_bytes_per_user)


def quota_error(room: int, incoming: int, what: str) -> ApiError:
    """The 413 of `what` (`incoming` bytes) not fitting in the caller's `room`."""
    limit = config().max_stored_bytes_per_user
    return ApiError(413, quota_text(limit, limit - room, incoming, what))
