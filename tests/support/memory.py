"""A process's resident memory from /proc (Linux), and its peak while something runs."""

from __future__ import annotations

import threading
from pathlib import Path
from types import TracebackType

MB = 1024 * 1024


def rss_bytes(pid: int) -> int:
    """Resident memory of a process (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


class PeakRss:
    """`with PeakRss(pid) as peak: ...`, then `peak.grown`: how far the process's resident
    memory rose above its level at the start, sampled every `interval` seconds meanwhile."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid = pid
        self.interval = interval
        self.before = rss_bytes(pid)
        self.peak = self.before
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while True:
            self.peak = max(self.peak, rss_bytes(self.pid))
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def grown(self) -> int:
        return self.peak - self.before

    def assert_grew_less_than(self, limit: int, what: str = "server") -> None:
        assert self.grown < limit, f"{what} grew {self.grown // MB} MB"
