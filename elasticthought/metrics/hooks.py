"""Small calls the rest of the service makes to record metrics; each one is cheap, never raises
and imports `prometheus_client` only on first use (so `process.setup` can pick the value class
first). The process that performs a transition records it: the API process a cancel of a
pending job, a worker process a claim, an end, a release; job child processes their own store
and blob calls and training iterations (into the service's multi-process directory)."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import Any

from elasticthought.documents import fields as f

log = logging.getLogger(__name__)

STORE_OPS = ("get", "create", "update", "delete", "list_prefix", "ping")
BLOB_OPS = ("put", "open", "exists", "size", "delete", "list", "ping")


@functools.lru_cache(maxsize=1)
def _defs() -> Any:
    from elasticthought.metrics import definitions

    return definitions


def _safely(fn: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            fn(*args, **kwargs)
        except Exception:  # noqa: BLE001 - metrics never break the service
            log.debug("recording a metric failed", exc_info=True)

    return wrapper


def job_labels(doc: dict) -> dict[str, str]:
    """Bounded labels of a job document: its type, required engine ("any") and GPU need."""
    from elasticthought.metrics.scaling import capability_of

    engine, gpu = capability_of(doc)
    return {"type": str(doc.get(f.TYPE) or "unknown"), "engine": engine, "gpu": gpu}


@_safely
def job_claimed(doc: dict) -> None:
    """A worker claimed `doc` (as written): count it; on the first attempt, its queue wait."""
    defs = _defs()
    labels = job_labels(doc)
    defs.jobs_started.labels(**labels).inc()
    created = doc.get(f.CREATED_AT)
    if int(doc.get(f.ATTEMPTS) or 0) == 1 and isinstance(created, int | float):
        started = float(doc.get(f.STARTED_AT) or time.time())
        defs.job_queue_wait.labels(**labels).observe(max(0.0, started - float(created)))


@_safely
def job_written(doc: dict | None, requeue_reason: str | None = None) -> None:
    """A transition wrote `doc`: count a final state (and the run's duration), or a return to
    pending (`requeue_reason`). Anything else is not counted."""
    if doc is None:
        return
    from elasticthought.documents.states import FINAL_STATES, PENDING

    defs = _defs()
    labels = job_labels(doc)
    state = doc.get(f.PROCESSING_STATE)
    if state in FINAL_STATES:
        defs.jobs_ended.labels(**labels, state=state).inc()
        started, finished = doc.get(f.STARTED_AT), doc.get(f.FINISHED_AT)
        if isinstance(started, int | float) and isinstance(finished, int | float):
            duration = max(0.0, float(finished) - float(started))
            defs.job_duration.labels(**labels, state=state).observe(duration)
    elif state == PENDING and requeue_reason:
        defs.jobs_requeued.labels(**labels, reason=requeue_reason).inc()


@_safely
def training_iterations(engine: str | None, count: int) -> None:
    """`count` more training iterations ran on `engine`."""
    if count > 0:
        _defs().training_iterations.labels(engine=engine or "any").inc(count)


def _timed(
    method: Callable[..., Any], histogram: Any, errors: Any, backend: str, op: str
) -> Callable[..., Any]:
    observe = histogram.labels(backend=backend, op=op).observe

    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return method(*args, **kwargs)
        except Exception as exc:
            try:
                errors.labels(backend=backend, op=op, error=type(exc).__name__).inc()
            except Exception:  # noqa: BLE001
                pass
            raise
        finally:
            try:
                observe(time.perf_counter() - start)
            except Exception:  # noqa: BLE001
                pass

    return call


def _instrument(obj: Any, ops: tuple[str, ...], histogram: Any, errors: Any, backend: str) -> Any:
    for op in ops:
        method = getattr(obj, op, None)
        if callable(method) and not getattr(method, "_et_timed", False):
            wrapped = _timed(method, histogram, errors, backend, op)
            wrapped._et_timed = True  # type: ignore[attr-defined]
            setattr(obj, op, wrapped)
    return obj


def backend_of(url: str) -> str:
    """The bounded `backend` label of a store or blob URL (its scheme family)."""
    scheme = url.split(":", 1)[0].lower()
    return {"sqlite": "sqlite", "http": "couchdb", "https": "couchdb", "file": "file"}.get(
        scheme, "other"
    )


def timed_store(store: Any, backend: str) -> Any:
    """Time `store`'s calls (per instance; the class is untouched). Returns `store`."""
    try:
        defs = _defs()
        return _instrument(store, STORE_OPS, defs.store_calls, defs.store_errors, backend)
    except Exception:  # noqa: BLE001
        log.debug("instrumenting the store failed", exc_info=True)
        return store


def timed_blobs(blobs: Any, backend: str) -> Any:
    """Time `blobs`' calls (per instance). Returns `blobs`."""
    try:
        defs = _defs()
        return _instrument(blobs, BLOB_OPS, defs.blob_calls, defs.blob_errors, backend)
    except Exception:  # noqa: BLE001
        log.debug("instrumenting the blob store failed", exc_info=True)
        return blobs
