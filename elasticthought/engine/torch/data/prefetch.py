"""A background thread that keeps the next batches ready (Caffe's BasePrefetchingDataLayer)."""

from __future__ import annotations

import inspect
import queue
import threading
import weakref
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class Prefetcher(Generic[T]):
    """Runs `produce()` repeatedly in a daemon thread, keeping up to `depth` results queued.

    `get()` returns results in production order and re-raises the producer's exception.
    `start()` is separate from construction so the thread only starts when data is wanted.
    """

    def __init__(self, produce: Callable[[], T], depth: int = 4, name: str = "prefetch") -> None:
        # A bound method is held weakly, so an unclosed layer can still be garbage-collected
        # (the thread then ends by itself).
        self._produce: Callable[[], Callable[[], T] | None] = (
            weakref.WeakMethod(produce) if inspect.ismethod(produce) else (lambda: produce)
        )
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._name = name
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        while not self._stop.is_set():
            produce = self._produce()
            if produce is None:
                return
            try:
                item: object = produce()
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer
                self._put(_Failure(exc))
                return
            del produce
            if not self._put(item):
                return

    def get(self) -> T:
        self.start()
        while True:
            try:
                item = self._queue.get(timeout=0.5)
                break
            except queue.Empty:
                if self._thread is not None and not self._thread.is_alive():
                    raise RuntimeError(f"{self._name}: prefetch thread ended") from None
        if isinstance(item, _Failure):
            self._stop.set()
            raise item.exc
        return item

    def close(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            # A producer waiting in `_put` for room would only see the stop at its next poll
            # (0.1 s); taking the queued batches makes room, so it returns at once.
            self._drain()
            thread.join(timeout=5)

    def _drain(self) -> None:
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return
