"""Process-wide shared read-only database handles for the Data layers.

LMDB and LevelDB refuse a second open of the same database in one process, yet a train net and
its test nets (or several test nets) often read the same source. Layers therefore acquire one
shared handle per (path, backend) and iterate it with their own cursors; the handle closes when
the last layer releases it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from typing import Any

_LOCK = threading.Lock()
_OPEN: dict[tuple[str, str], list[Any]] = {}  # key -> [database, reference count]


def _key(source: str, backend: str) -> tuple[str, str]:
    return os.path.realpath(source), backend


def acquire(source: str, backend: str) -> Any:
    """The shared read-only database for `source` (opened on first use)."""
    from elasticthought.engine.db import open_db

    key = _key(source, backend)
    with _LOCK:
        entry = _OPEN.get(key)
        if entry is None:
            entry = _OPEN[key] = [open_db(source, backend, "r"), 0]
        entry[1] += 1
        return entry[0]


def release(source: str, backend: str) -> None:
    """Drop one reference; the last one closes the database."""
    key = _key(source, backend)
    with _LOCK:
        entry = _OPEN.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] <= 0:
            del _OPEN[key]
            entry[0].close()


def first_value(db: Any) -> bytes | None:
    """The value of the first key, or None for an empty database."""
    records: Iterator = iter(db)
    try:
        for _key_bytes, value in records:
            return value
        return None
    finally:
        close = getattr(records, "close", None)
        if close is not None:
            close()
