"""The document store contract shared by every backend.

Documents are JSON objects with `_id`, `_rev` and `type`. Every update names the revision it read;
a stale revision raises `Conflict`. Ids made by `new_id` sort by creation time within one
(type, owner) pair, so listing newest-first works on stores without views or `_find`
(Sync Gateway): `_all_docs` with a key range over the id prefix.
"""

from __future__ import annotations

import abc
import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

Doc = dict[str, Any]

ID_SEP = ":"
#: The field naming a document's owner: ids made by `create` without `_id` embed it.
OWNER_FIELD = "user-id"


class StoreError(Exception):
    """The store failed or is unreachable; carries a reason for the user."""


class NotFound(StoreError):
    """No document with that id (or it was deleted)."""


class Conflict(StoreError):
    """The revision named is not the current one, or the id already exists."""


@dataclass
class Changes:
    """One page of the changes feed: changed ids in order and the sequence to resume from."""

    ids: list[str] = field(default_factory=list)
    last_seq: str = "0"


def _time_key() -> str:
    """A 24-character key that sorts by creation time (microseconds) then randomly."""
    return f"{time.time_ns() // 1000:016x}{os.urandom(4).hex()}"


def new_id(doc_type: str, owner: str | None = None) -> str:
    """Make a document id `<type>:<owner>:<time-sortable key>` (owner may be empty)."""
    if ID_SEP in doc_type:
        raise ValueError(f"document type may not contain {ID_SEP!r}: {doc_type!r}")
    owner_part = (owner or "").replace(ID_SEP, "~")
    return f"{doc_type}{ID_SEP}{owner_part}{ID_SEP}{_time_key()}"


def id_prefix(doc_type: str, owner: str | None = None) -> str:
    """The id prefix shared by every document of `doc_type` (and of `owner` when given)."""
    if owner is None:
        return f"{doc_type}{ID_SEP}"
    return f"{doc_type}{ID_SEP}{owner.replace(ID_SEP, '~')}{ID_SEP}"


class Store(abc.ABC):
    """A document store: revisions, compare-and-swap updates, a changes feed, prefix listing."""

    url: str
    # (first, longest) pause in seconds between `modify` retries after a conflict
    conflict_backoff: tuple[float, float] = (0.001, 0.05)

    @abc.abstractmethod
    def get(self, doc_id: str) -> Doc:
        """Return the current document (with `_rev`); raise `NotFound`."""

    @abc.abstractmethod
    def create(self, doc: Doc) -> Doc:
        """Insert a new document (its `_id` given, or made by `new_id` from `type` and
        `user-id`); return it with `_id` and `_rev`. An existing id raises `Conflict`."""

    @abc.abstractmethod
    def update(self, doc: Doc) -> Doc:
        """Replace the document whose `_id` and `_rev` are given; return it with its new `_rev`.
        A stale `_rev` raises `Conflict`; a missing document raises `NotFound`."""

    @abc.abstractmethod
    def delete(self, doc_id: str, rev: str) -> None:
        """Delete the document at revision `rev` (`Conflict` when stale, `NotFound`)."""

    @abc.abstractmethod
    def changes(self, since: str | None = None, timeout: float = 0.0) -> Changes:
        """Ids changed after sequence `since` (None or "0" = from the start), in order, and the
        sequence to resume from. Blocks up to `timeout` seconds when nothing changed."""

    @abc.abstractmethod
    def list_prefix(
        self, prefix: str, limit: int | None = None, skip: int = 0, descending: bool = False
    ) -> list[Doc]:
        """Documents whose id starts with `prefix`, in id order (reversed when `descending`)."""

    @abc.abstractmethod
    def ping(self) -> None:
        """Raise `StoreError` with the reason when the store is not reachable."""

    def close(self) -> None:  # noqa: B027 - optional for backends
        """Release connections."""

    # Helpers built on the primitives -------------------------------------------------------

    def list(
        self,
        doc_type: str,
        owner: str | None = None,
        limit: int | None = None,
        skip: int = 0,
        newest_first: bool = True,
    ) -> list[Doc]:
        """Documents of one type (of one owner when given), newest first, paginated."""
        return self.list_prefix(
            id_prefix(doc_type, owner), limit=limit, skip=skip, descending=newest_first
        )

    def iter_type(self, doc_type: str, page: int = 500) -> Iterator[Doc]:
        """Every document of one type, oldest first, fetched in pages."""
        skip = 0
        while True:
            docs = self.list_prefix(id_prefix(doc_type), limit=page, skip=skip)
            yield from docs
            if len(docs) < page:
                return
            skip += page

    def _cas_update(self, doc: Doc) -> Doc:
        """The update `modify` uses; a backend may skip work that only `update`'s callers need."""
        return self.update(doc)

    def modify(self, doc_id: str, change: Any, retries: int = 50) -> Doc | None:
        """Read-modify-write with retry on conflict. `change(doc)` edits the doc in place and
        returns False to abandon the write (then None is returned). Conflicts are retried after a
        short random pause."""
        for attempt in range(retries):
            doc = self.get(doc_id)
            if change(doc) is False:
                return None
            try:
                return self._cas_update(doc)
            except Conflict:
                # Jittered exponential backoff: racing writers spread out instead of colliding.
                first, cap = self.conflict_backoff
                time.sleep(random.uniform(0, min(first * 2 ** min(attempt, 10), cap)))
        raise Conflict(f"document {doc_id} kept changing: gave up after {retries} tries")
