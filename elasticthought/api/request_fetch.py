"""The few downloads a request still makes itself (a prototxt or model named by URL, checked
before its document is stored) run in a bounded number of request threads, each with a short
total deadline: a slow server (1 byte/s) can hold at most `limits.REQUEST_FETCH_SLOTS` threads
for at most `limits.REQUEST_FETCH_TIMEOUT` seconds, so the other threads keep answering
(/health included). A request finding every slot busy gets 503 at once (waiting would hold a
thread too)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

from elasticthought import limits
from elasticthought.api.errors import ApiError
from elasticthought.api.services import config
from elasticthought.fetch import FetchPolicy, open_url

_SLOTS = threading.BoundedSemaphore(limits.REQUEST_FETCH_SLOTS)


def request_policy(max_bytes: int | None = None, total: float | None = None) -> FetchPolicy:
    """The fetch policy of a download made while answering a request."""
    policy = FetchPolicy.from_config(config())
    if max_bytes is not None:
        policy.max_bytes = min(policy.max_bytes, max_bytes)
    policy.total_timeout = min(policy.total_timeout, total or limits.REQUEST_FETCH_TIMEOUT)
    policy.stall_timeout = min(policy.stall_timeout, policy.total_timeout)
    return policy


def _busy() -> ApiError:
    return ApiError(
        503, "too many downloads are running for other requests; retry in a few seconds"
    )


def fetch_in_request(url: str, policy: FetchPolicy, sink: Callable[[Iterator[bytes]], Any]) -> Any:
    """Stream `url` into `sink(chunks)` in one of the bounded request-download slots."""
    if not _SLOTS.acquire(blocking=False):
        raise _busy()
    try:
        chunks, _ = open_url(url, policy)
        return sink(chunks)
    finally:
        _SLOTS.release()


def fetch_small(url: str, max_bytes: int) -> bytes:
    """The whole (small) resource at `url`, e.g. a prototxt."""
    return fetch_in_request(url, request_policy(max_bytes), b"".join)
