"""The CPU budget of one worker process: its cores, shared among the jobs it runs at once.

A worker knows its cores (`--cpus`, default what the OS gives the process). Each job takes a
whole number of them for as long as it runs: by default its share (the cores divided by the
worker threads, at least one), or what its document asks for in `cpus` (bounded by the
cores). A job starts only when its cores are free, so the threads of all running jobs never
add up to more than the cores. Inside the job's process the cores become thread counts
(`thread_environment`, `apply_thread_limit`): torch intra-op threads, OpenMP, OpenBLAS, MKL.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

from elasticthought.documents.fields import CPUS

#: OpenMP waits passively: a thread with nothing to do sleeps instead of spinning on a core
#: another job (or another process) needs.
OMP_WAIT_POLICY = "PASSIVE"
#: The variables that set how many threads the numeric libraries start.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
#: The least work (seconds on one thread) that pays for one more thread in a long-lived
#: process. Each operator of a forward wakes the sleeping (passive) OpenMP threads, so a small
#: batch runs slower on more threads: a LeNet forward of one image took 0.6 ms on one thread
#: and 0.9 ms on two, 64 images 10.4 ms and 6.8 ms (2 cores, an idle gap before each).
SECONDS_PER_THREAD = 0.002


def os_cpus() -> int:
    """The cores the OS lets this process run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def asked_cpus(doc: dict) -> int:
    """The cores a job document asks for (0 = none asked; a bad value counts as none)."""
    value = doc.get(CPUS)
    if isinstance(value, bool) or not isinstance(value, int):
        return 0
    return max(0, value)


class CpuBudget:
    """Whole cores handed out to running jobs; never more than `total` at once."""

    def __init__(self, total: int, slots: int) -> None:
        self.total = max(1, int(total))
        self.share = max(1, self.total // max(1, int(slots)))
        self.free = self.total
        self._lock = threading.Lock()

    def wanted(self, doc: dict) -> int:
        """The cores a job gets: what it asks for, else the default share; 1..total."""
        return min(self.total, asked_cpus(doc) or self.share)

    def take(self, cores: int) -> bool:
        """Take `cores` when that many are free (True), else take nothing (False)."""
        with self._lock:
            if cores > self.free:
                return False
            self.free -= cores
            return True

    def give_back(self, cores: int) -> None:
        with self._lock:
            self.free = min(self.total, self.free + cores)

    def in_use(self) -> int:
        with self._lock:
            return self.total - self.free


class WorkThreads:
    """Threads for each batch of like items (images to classify) in a process that keeps
    running: as many as the batch's work pays for (`SECONDS_PER_THREAD` each), never more
    than `cores`. The work of an item is learnt from batches run on one thread (the first
    batch runs on one); the quickest per item counts, a slow (cold) batch does not."""

    def __init__(self, cores: int) -> None:
        self.cores = max(1, int(cores))
        self.seconds_per_item: float | None = None

    def threads(self, items: int) -> int:
        """The threads a batch of `items` gets."""
        if self.seconds_per_item is None:
            return 1
        work = max(0, items) * self.seconds_per_item
        return max(1, min(self.cores, int(work / SECONDS_PER_THREAD)))

    def observe(self, items: int, threads: int, seconds: float) -> None:
        """A batch of `items` took `seconds` on `threads` threads."""
        if threads != 1 or items < 1 or seconds <= 0:
            return
        per_item = seconds / items
        if self.seconds_per_item is None or per_item < self.seconds_per_item:
            self.seconds_per_item = per_item


def use_threads(threads: int) -> None:
    """This process's compute threads from now on (torch's, when it is imported)."""
    torch: Any = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(max(1, threads))


def thread_environment(cores: int) -> dict[str, str]:
    """Environment variables that hold the numeric libraries to `cores` threads."""
    env = {name: str(max(1, cores)) for name in THREAD_VARIABLES}
    env["OMP_WAIT_POLICY"] = OMP_WAIT_POLICY
    return env


def apply_thread_limit(cores: int) -> None:
    """In a job's process: `cores` threads from now on, for this process and what it starts
    (torch is told directly when it is already imported, as in a warm process)."""
    os.environ.update(thread_environment(cores))
    use_threads(cores)
    torch: Any = sys.modules.get("torch")
    if torch is not None:
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # already fixed once parallel work ran in this process
            pass
