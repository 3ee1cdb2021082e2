"""The stored-bytes quota of one user (`--max-stored-bytes-per-user`), defined once: what a
user keeps is the sum of the blobs under their documents (datafiles, datasets, training jobs,
classifiers, classify jobs). The API checks it for uploads and for a classifier's `model-url`
and classify-job images (413), a datafile job while it downloads its URL and a dataset job
before it stores each split archive, a training job before it stores a snapshot or its model
(`failed`); all through `check_stored_bytes`, `room_left`
and `QuotaGuard` here, with the words of `quota_text`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from elasticthought.blobs import layout
from elasticthought.documents.fields import (
    CLASSIFIER,
    CLASSIFY_JOB,
    DATAFILE,
    DATASET,
    TRAINING_JOB,
)
from elasticthought.store.base import id_prefix

FLAG = "--max-stored-bytes-per-user"
BLOB_TYPES = (DATAFILE, DATASET, TRAINING_JOB, CLASSIFIER, CLASSIFY_JOB)


class QuotaExceeded(Exception):
    """Storing more would take the owner past their quota; the message names the flag and
    the numbers."""


def stored_bytes(blobs: Any, owner: str, ignore: Iterable[str] = ()) -> int:
    """Bytes the owner's documents keep in the blob store, leaving out the keys `ignore` (a
    blob about to be replaced)."""
    skip = set(ignore)
    total = 0
    for doc_type in BLOB_TYPES:
        # id_prefix ends with the id separator, so prefix() ends "owner//": drop one slash
        for key in blobs.list(layout.prefix(id_prefix(doc_type, owner))[:-1]):
            if key not in skip:
                total += blobs.size(key)
    return total


def quota_text(limit: int, used: int, incoming: int, what: str) -> str:
    """Why `what` is refused: it would take the owner past the quota."""
    return (
        f"{what} would take your stored data past {limit} bytes ({FLAG}; {used} bytes used, "
        f"{incoming} more bytes): delete something first"
    )


def room_left(blobs: Any, owner: str, limit: int, ignore: Iterable[str] = ()) -> int | None:
    """Bytes the owner may still store (None: no quota, `limit` <= 0) and never below 0."""
    if limit <= 0:
        return None
    return max(0, limit - stored_bytes(blobs, owner, ignore))


def check_stored_bytes(
    blobs: Any,
    owner: str,
    limit: int,
    incoming: int,
    what: str = "this upload",
    ignore: Iterable[str] = (),
    reserved: int = 0,
) -> None:
    """Raise `QuotaExceeded` when storing `incoming` more bytes would pass the quota (`ignore`:
    keys left out of the usage, e.g. the blob the new bytes replace; `reserved`: bytes other
    requests are storing meanwhile, counted as used)."""
    if limit <= 0:
        return
    used = stored_bytes(blobs, owner, ignore) + reserved
    if used + max(0, incoming) > limit:
        raise QuotaExceeded(quota_text(limit, used, max(0, incoming), what))


class QuotaGuard:
    """Counts bytes as they stream into the store and stops (`QuotaExceeded`) before the
    owner's stored bytes plus them pass the quota (`room` from `room_left`; None: no quota)."""

    def __init__(self, room: int | None, limit: int, what: str) -> None:
        self.room = room
        self.limit = limit
        self.what = what
        self.count = 0

    def check(self, incoming: int) -> None:
        """Refuse `incoming` more bytes (e.g. a declared Content-Length) past the room."""
        if self.room is not None and self.count + incoming > self.room:
            used = self.limit - self.room
            raise QuotaExceeded(quota_text(self.limit, used, self.count + incoming, self.what))

    def stream(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """`chunks`, checked before each one is passed on."""
        for chunk in chunks:
            self.check(len(chunk))
            self.count += len(chunk)
            yield chunk
