"""Downloads a request makes (a prototxt or model named by URL, checked before its document is
stored) never run in the server process: each runs in a lean bounded child
(`elasticthought.bounded`, `python -S` with only `elasticthought.fetch` imported) under
`limits.REQUEST_FETCH_MEMORY` of address space and a wall-time limit of the download's total
timeout plus `limits.REQUEST_FETCH_START_GRACE`. The request thread only waits for the child's
answer. At most `limits.REQUEST_FETCH_SLOTS` such children run at once; a request finding
every slot busy gets 503 at once (waiting would hold a thread too).

A prototxt comes back through the child's pipe (it is at most `max_bytes`, 1 MiB). A model is
streamed by the child into a temporary file under the work folder, which the server then
streams into the blob store: the server never holds it in memory, and on any failure the
temporary file is removed and no blob is left. The fetch policy is the service's
(`FetchPolicy.from_config`: address checks, size, stall and total limits, file: rules)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from elasticthought import limits
from elasticthought.api.errors import ApiError
from elasticthought.api.services import blobs, config
from elasticthought.bounded import (
    BoundedBusy,
    BoundedError,
    BoundedLimitError,
    ChildSlots,
    run_bounded,
)
from elasticthought.fetch import FetchError, FetchPolicy

DOWNLOADS_DIR = "request-downloads"  # under the work folder: models being downloaded
# A download's temporary file older than this belongs to no live download (each ends, or is
# killed, within REQUEST_MODEL_FETCH_TIMEOUT plus the blob copy): a server killed meanwhile
# left it, and the next start removes it (`sweep_stale_downloads`).
STALE_DOWNLOAD_SECONDS = 10 * limits.REQUEST_MODEL_FETCH_TIMEOUT

_SLOTS = ChildSlots(
    limits.REQUEST_FETCH_SLOTS,
    0,
    "too many downloads are running for other requests; retry in a few seconds",
)


def request_policy(max_bytes: int | None = None, total: float | None = None) -> FetchPolicy:
    """The fetch policy of a download made while answering a request."""
    policy = FetchPolicy.from_config(config())
    if max_bytes is not None:
        policy.max_bytes = min(policy.max_bytes, max_bytes)
    policy.total_timeout = min(policy.total_timeout, total or limits.REQUEST_FETCH_TIMEOUT)
    policy.stall_timeout = min(policy.stall_timeout, policy.total_timeout)
    return policy


def _in_child(target: str, args: tuple, policy: FetchPolicy) -> Any:
    """`elasticthought.fetch:<target>(*args)` in a lean bounded child; `FetchError` (the
    child's own, or naming the child's limit), or 503 when every slot is busy."""
    try:
        return run_bounded(
            f"elasticthought.fetch:{target}",
            args,
            limits.REQUEST_FETCH_MEMORY,
            policy.total_timeout + limits.REQUEST_FETCH_START_GRACE,
            slots=_SLOTS,
            lean=True,
        )
    except BoundedBusy as exc:
        raise ApiError(503, str(exc)) from None
    except BoundedLimitError as exc:
        raise FetchError(f"the download was stopped: {exc}") from None
    except BoundedError:
        raise FetchError("the download failed") from None


def fetch_small(url: str, max_bytes: int) -> bytes:
    """The whole (small) resource at `url`, e.g. a prototxt, downloaded in a child."""
    policy = request_policy(max_bytes)
    return _in_child("fetch_bytes", (url, policy), policy)


def fetch_into_blob(url: str, key: str, policy: FetchPolicy) -> int:
    """Download `url` in a child into a temporary file, then stream it into the blob `key`;
    the size. Nothing is left behind on failure (no temporary file, no blob)."""
    folder = Path(config().work_path) / DOWNLOADS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="model-")
    os.close(fd)
    try:
        _in_child("fetch_to_file", (url, policy, tmp), policy)
        with open(tmp, "rb") as downloaded:
            return blobs().put(key, downloaded)
    except BaseException:
        blobs().delete(key)
        raise
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def sweep_stale_downloads(work_path: str | os.PathLike, now: float | None = None) -> int:
    """Remove the temporary files of downloads a killed server left (older than
    `STALE_DOWNLOAD_SECONDS`; another server sharing the work folder may own newer ones); how
    many were removed."""
    import time

    cutoff = (time.time() if now is None else now) - STALE_DOWNLOAD_SECONDS
    removed = 0
    for path in (Path(work_path) / DOWNLOADS_DIR).glob("model-*"):
        try:
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except OSError:
            pass
    return removed
