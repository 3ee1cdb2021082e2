"""Requests that keep a request thread while they wait: `logs?follow=true` streams (up to ten
minutes) and `classify?wait=true` on a queued job (up to a minute).

The front has a fixed number of request threads (`--http-threads`, at least 16). Unbounded, one
user opening that many follow streams would leave none for anybody else. So one user holds at
most `limits.HELD_REQUESTS_PER_USER` such requests at once, and all users together at most
`HELD_REQUESTS_SHARE` of the request threads. Past either, a follow stream answers 429 with
Retry-After, and a classify request answers at once without waiting (its job as it stands, to
poll). In memory, per server process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from elasticthought import limits
from elasticthought.api.services import config


class HeldRequests:
    """Counts of held requests per owner and in all; never more than the caps."""

    def __init__(self, per_owner: int, total: int) -> None:
        self.per_owner = max(1, per_owner)
        self.total = max(1, total)
        self._by_owner: dict[str, int] = {}
        self._lock = threading.Lock()

    def try_hold(self, owner: str) -> bool:
        """Take one for `owner` when both caps allow (True), else take nothing (False)."""
        with self._lock:
            mine = self._by_owner.get(owner, 0)
            if mine >= self.per_owner or sum(self._by_owner.values()) >= self.total:
                return False
            self._by_owner[owner] = mine + 1
            return True

    def release(self, owner: str) -> None:
        with self._lock:
            left = self._by_owner.get(owner, 0) - 1
            if left > 0:
                self._by_owner[owner] = left
            else:
                self._by_owner.pop(owner, None)

    def held(self) -> int:
        with self._lock:
            return sum(self._by_owner.values())


_held: HeldRequests | None = None
_held_lock = threading.Lock()


def held_requests() -> HeldRequests:
    """This process's counts (sized from the app's `--http-threads` on first use)."""
    global _held
    with _held_lock:
        if _held is None:
            threads = max(limits.MIN_HTTP_THREADS, int(config().http_threads))
            total = int(threads * limits.HELD_REQUESTS_SHARE)
            _held = HeldRequests(limits.HELD_REQUESTS_PER_USER, total)
        return _held


@contextmanager
def holding(owner: str) -> Iterator[bool]:
    """Whether `owner` may hold a thread now (True: held until the block ends)."""
    counts = held_requests()
    held = counts.try_hold(owner)
    try:
        yield held
    finally:
        if held:
            counts.release(owner)


class HeldStream:
    """A streamed response body that gives its hold back once, when the server closes it:
    after the last chunk, or when the client went away, even before the first chunk (a
    generator that never started would not run its `finally`)."""

    def __init__(self, chunks: Iterator[bytes], release: Callable[[], None]) -> None:
        self._chunks = chunks
        self._release: Callable[[], None] | None = release

    def __iter__(self) -> HeldStream:
        return self

    def __next__(self) -> bytes:
        return next(self._chunks)

    def close(self) -> None:
        try:
            close = getattr(self._chunks, "close", None)
            if close is not None:
                close()
        finally:
            release, self._release = self._release, None
            if release is not None:
                release()
