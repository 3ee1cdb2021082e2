"""What a runner sees in the job's child process: `JobContext`."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from elasticthought.config import Config

PR_SET_PDEATHSIG = 1
PROGRESS_MIN_INTERVAL = 0.2  # seconds between progress messages sent to the worker


@functools.cache
def _libc() -> Any:
    """The C library (the process's own symbols: no `find_library`, which runs `ldconfig`
    in a subprocess and cost every job process milliseconds)."""
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def set_parent_death_signal(sig: int = signal.SIGKILL) -> None:
    """Ask Linux to send `sig` to this process when its parent (thread) ends."""
    try:
        _libc().prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the parent-watch thread still applies
        pass


def _grandchild_setup() -> None:
    set_parent_death_signal(signal.SIGKILL)


class JobContext:
    """The running job, seen from its child process.

    `job` is the document as claimed; `store` (for reading other documents; the job document
    is written by the worker only) and `blobs` are opened in the child on first use;
    `work_dir` is unique per job and kept across attempts (a resumed training finds its
    snapshots there); `attempt` is 1-based; `gpus` are the CUDA device ids given to this job
    (`CUDA_VISIBLE_DEVICES` is set to them, so inside the child they are cuda:0..n-1).
    """

    def __init__(
        self,
        job: dict,
        config: Config,
        work_dir: Path,
        attempt: int,
        store_url: str,
        blobs_url: str,
        send: Callable[[tuple], None] | None = None,
        gpus: list[int] | None = None,
    ) -> None:
        self.job = job
        self.job_id: str = job["_id"]
        self.config = config
        self.work_dir = Path(work_dir)
        self.attempt = attempt
        self.gpus = list(gpus or [])
        self.store_url = store_url
        self.blobs_url = blobs_url
        self._send = send
        self._store: Any = None
        self._blobs: Any = None
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self._pending: dict[str, Any] = {}
        self._last_sent = 0.0
        self._timer: threading.Timer | None = None

    # Documents and blobs ------------------------------------------------------------------

    @property
    def store(self) -> Any:
        """The document store (opened in the child); read other documents with it."""
        if self._store is None:
            from elasticthought.metrics.hooks import backend_of, timed_store
            from elasticthought.store import open_store

            store = open_store(self.store_url, create=False)
            self._store = timed_store(store, backend_of(self.store_url))
        return self._store

    @property
    def blobs(self) -> Any:
        """The blob store (opened in the child); writes allowed."""
        if self._blobs is None:
            from elasticthought.blobs import open_blobs
            from elasticthought.metrics.hooks import backend_of, timed_blobs

            self._blobs = timed_blobs(open_blobs(self.blobs_url), backend_of(self.blobs_url))
        return self._blobs

    # Progress and cancel ------------------------------------------------------------------

    def progress(self, **fields: Any) -> None:
        """Report progress fields (merged into the job document by the worker, at most about
        once a second, latest values win). Never blocks on the store."""
        with self._lock:
            self._pending.update(fields)
            wait = self._last_sent + PROGRESS_MIN_INTERVAL - time.monotonic()
            if wait <= 0:
                self._flush_locked()
            elif self._timer is None:
                self._timer = threading.Timer(wait, self.flush)
                self._timer.daemon = True
                self._timer.start()

    def flush(self) -> None:
        """Send progress not yet sent (called at the end of the job)."""
        with self._lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._pending and self._send is not None:
            self._send(("progress", dict(self._pending)))
        self._pending.clear()
        self._last_sent = time.monotonic()

    def cancelled(self) -> bool:
        """True once a cancel was requested (the worker ends the job's processes shortly
        after; a runner may stop early and cleanly instead)."""
        return self._cancel.is_set()

    def _set_cancelled(self) -> None:
        self._cancel.set()

    # Grandchildren ------------------------------------------------------------------------

    def spawn(self, args: list[str] | str, **popen_kwargs: Any) -> subprocess.Popen:
        """Start a process that ends with the job: it stays in the job's process group (which
        the worker kills on cancel, fencing, timeout and shutdown) and gets SIGKILL when this
        child dies. Call it from the thread that keeps running (the runner's thread)."""
        for bad in ("start_new_session", "process_group", "preexec_fn"):
            if bad in popen_kwargs:
                raise ValueError(f"spawn() manages {bad} itself")
        popen_kwargs.setdefault("cwd", str(self.work_dir))
        return subprocess.Popen(args, preexec_fn=_grandchild_setup, **popen_kwargs)


def job_work_dir(config: Config, job_id: str) -> Path:
    """The job's work directory: stable across attempts, safe as a folder name."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in job_id)
    path = config.work_path / safe
    path.mkdir(parents=True, exist_ok=True)
    return path


def kill_group(pid: int, sig: int = signal.SIGKILL) -> None:
    """Signal the process group led by `pid`, and `pid` itself; gone is not an error."""
    for fn, target in ((os.killpg, pid), (os.kill, pid)):
        try:
            fn(target, sig)
        except (ProcessLookupError, PermissionError):
            pass
