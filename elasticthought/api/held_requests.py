"""Requests that keep a request thread while they wait: `logs?follow=true` streams (up to ten
minutes) and `classify?wait=true` on a queued job (up to a minute).

The front has a fixed number of request threads (`--http-threads`, at least 16). Unbounded, one
user opening that many follow streams would leave none for anybody else. So one user holds at
most `limits.HELD_REQUESTS_PER_USER` such requests at once, and all users together at most
`HELD_REQUESTS_SHARE` of the request threads. A user's new follow stream past their own cap
ends their oldest one (within a poll: a browser tab left open, or closed while its job had
nothing to log, is the usual holder; a client still reading reconnects); past the cap of all
users it answers 429 with Retry-After. A classify request past either cap answers at once
without waiting (its job as it stands, to poll). In memory, per server process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from elasticthought import limits
from elasticthought.api.app import get_services


class Hold:
    """One held request; `stop` is set when a newer request of its owner took its place."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.stop = threading.Event()


class HeldRequests:
    """Held requests per owner (oldest first) and in all; never more than the caps."""

    def __init__(self, per_owner: int, total: int) -> None:
        self.per_owner = max(1, per_owner)
        self.total = max(1, total)
        self._by_owner: dict[str, list[Hold]] = {}
        self._lock = threading.Lock()

    def try_hold(self, owner: str, replace_oldest: bool = False) -> Hold | None:
        """A hold for `owner` when the caps allow, else None. At the owner's own cap,
        `replace_oldest` stops their oldest hold (its `stop` is set) and takes its place."""
        with self._lock:
            mine = self._by_owner.get(owner, [])
            if len(mine) >= self.per_owner:
                if not replace_oldest:
                    return None
                mine.pop(0).stop.set()
            elif sum(len(h) for h in self._by_owner.values()) >= self.total:
                return None
            hold = Hold(owner)
            self._by_owner[owner] = [*mine, hold]
            return hold

    def release(self, hold: Hold) -> None:
        with self._lock:
            mine = [h for h in self._by_owner.get(hold.owner, []) if h is not hold]
            if mine:
                self._by_owner[hold.owner] = mine
            else:
                self._by_owner.pop(hold.owner, None)

    def held(self) -> int:
        with self._lock:
            return sum(len(h) for h in self._by_owner.values())


_held_lock = threading.Lock()


def held_requests() -> HeldRequests:
    """The app's holds (sized from its `--http-threads` on first use)."""
    services = get_services()
    with _held_lock:
        if services.held is None:
            threads = max(limits.MIN_HTTP_THREADS, int(services.config.http_threads))
            total = int(threads * limits.HELD_REQUESTS_SHARE)
            services.held = HeldRequests(limits.HELD_REQUESTS_PER_USER, total)
        return services.held


@contextmanager
def holding(owner: str) -> Iterator[bool]:
    """Whether `owner` may hold a thread now (True: held until the block ends)."""
    counts = held_requests()
    hold = counts.try_hold(owner)
    try:
        yield hold is not None
    finally:
        if hold is not None:
            counts.release(hold)


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
