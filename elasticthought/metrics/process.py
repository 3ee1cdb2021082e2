"""Per-service metric storage: prometheus_client's multi-process mode, one directory per service.

A service (`serve` or `worker`) and the job child processes it starts record into one
directory (`--metrics-dir`, else a fresh temporary one removed at exit); the service sets
`PROMETHEUS_MULTIPROC_DIR` to it, so children (spawned) inherit it. A scrape reads the
directory, after folding the files of child processes that have ended into one archive file per
metric type (so the scrape cost does not grow with the number of jobs ever run).
"""

from __future__ import annotations

import atexit
import glob
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Iterable
from typing import Any

log = logging.getLogger(__name__)

ENV = "PROMETHEUS_MULTIPROC_DIR"
ARCHIVE = "archive"
TEMP_PREFIX = "elasticthought-metrics-"  # + "<pid>-<random>" of the owning service
COMPACT_EVERY = 60.0  # seconds between foldings of ended children's files


class MetricsProcess:
    """The metric storage of this service process (`setup` makes it)."""

    def __init__(self, directory: str | None, owned: bool) -> None:
        self.directory = directory
        self.owned = owned
        self._lock = threading.Lock()

    def render(self, collectors: Iterable[Any] = ()) -> bytes:
        """The Prometheus text exposition of this service: what it and its job children
        recorded, plus `collectors` (computed now)."""
        from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry(auto_describe=False)
        with self._lock:
            if self.directory:
                compact(self.directory, os.getpid())
                MultiProcessCollector(registry, path=self.directory)
            else:
                registry.register(_Forward(REGISTRY))
            for collector in collectors:
                registry.register(collector)
            return generate_latest(registry)

    def close(self) -> None:
        with self._lock:
            if self.owned and self.directory:
                shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None


class _Forward:
    """A collector yielding another registry's metrics (the in-memory mode)."""

    def __init__(self, registry: Any) -> None:
        self.registry = registry

    def collect(self) -> Iterable[Any]:
        return self.registry.collect()


_current: MetricsProcess | None = None


def current() -> MetricsProcess:
    """This process's metric storage (in memory when `setup` was not called)."""
    global _current
    if _current is None:
        _current = MetricsProcess(None, owned=False)
    return _current


def setup(directory: str = "") -> MetricsProcess:
    """Use multi-process mode in `directory` (emptied first; a fresh temporary one when
    empty) for this process and the job children it starts. Call before any metric is
    recorded (before the store is opened)."""
    global _current
    owned = not directory
    if owned:
        _remove_leftovers()
        directory = tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-")
    else:
        os.makedirs(directory, exist_ok=True)
        for path in glob.glob(os.path.join(directory, "*.db")):
            os.remove(path)
    os.environ[ENV] = directory
    from prometheus_client import values

    values.ValueClass = values.get_value_class()
    _current = MetricsProcess(directory, owned)
    atexit.register(_current.close)
    threading.Thread(
        target=_compact_every, args=(_current,), name="et-metrics", daemon=True
    ).start()
    log.debug("metrics in %s", directory)
    return _current


def _remove_leftovers() -> None:
    """Remove the temporary directories of services that died without cleaning up (SIGKILL)."""
    for path in glob.glob(os.path.join(tempfile.gettempdir(), f"{TEMP_PREFIX}*-*")):
        pid = os.path.basename(path)[len(TEMP_PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def _compact_every(proc: MetricsProcess, interval: float = COMPACT_EVERY) -> None:
    """Fold ended children's files now and then, also when nobody scrapes."""
    while proc.directory:
        threading.Event().wait(interval)
        with proc._lock:
            if not proc.directory:
                return
            try:
                compact(proc.directory, os.getpid())
            except OSError as exc:
                log.warning("compacting metric files: %s", exc)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def compact(directory: str, own_pid: int) -> int:
    """Fold the counter/histogram files of ended processes into `<type>_archive.db`; drop
    their live-gauge files. Returns how many files were folded."""
    from prometheus_client.mmap_dict import MmapedDict

    folded = 0
    for path in glob.glob(os.path.join(directory, "*.db")):
        parts = os.path.basename(path)[:-3].split("_")
        pid = parts[-1]
        if not pid.isdigit() or int(pid) == own_pid or _alive(int(pid)):
            continue
        if parts[0] == "gauge":
            os.remove(path)  # we record no process-owned gauges; a dead one means nothing
            continue
        archive = MmapedDict(os.path.join(directory, f"{parts[0]}_{ARCHIVE}.db"))
        try:
            for key, value, timestamp, _ in MmapedDict.read_all_values_from_file(path):
                total, _ = archive.read_value(key)
                archive.write_value(key, total + value, timestamp)
        finally:
            archive.close()
        os.remove(path)
        folded += 1
    return folded
