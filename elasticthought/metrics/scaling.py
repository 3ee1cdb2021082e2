"""The scaling signal: per capability, jobs pending and running, workers and free slots, and
the number of workers recommended by one documented rule.

Capability of a job = (engine, gpu): the engine its runner requires ("any" when none, e.g.
datafile and dataset jobs) and whether it needs a GPU ("true"/"false"). Totals per GPU need
use engine "all" (what one pool of identical workers, e.g. compose's `worker`, serves).

The rule, for one capability (or one total) at time `now`:

    raw         = ceil((running + pending) / slots_per_worker)
    bounded     = min(max(raw, min_workers), max_workers)
    recommended = the largest `bounded` seen in the last `cooldown` seconds

so demand scales up at once and down only after it stayed lower for the whole cool-down (the
signal does not flap down while a burst drains). GPU and CPU demand are counted apart.
"""

from __future__ import annotations

import math
import threading
import time
from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from elasticthought.documents.fields import TYPE

ANY_ENGINE = "any"
ALL_ENGINES = "all"
Key = tuple[str, str]  # (engine, gpu "true"/"false")


def gpu_label(gpus: int | bool) -> str:
    return "true" if int(gpus or 0) > 0 else "false"


def capability_of(doc: dict) -> Key:
    """(engine, gpu) a job document needs, from its runner's requirements."""
    from elasticthought.queue.registry import (
        default_requirements,
        normalize_requirements,
        runner_for,
    )

    runner = runner_for(doc.get(TYPE))
    try:
        needs = runner.needs(doc) if runner else normalize_requirements(default_requirements(doc))
    except Exception:  # noqa: BLE001 - a malformed document still gets labels
        needs = {"engine": None, "gpu": 0}
    return (needs.get("engine") or ANY_ENGINE, gpu_label(needs.get("gpu") or 0))


def raw_workers(running: int, pending: int, slots_per_worker: int) -> int:
    """ceil((running + pending) / slots_per_worker)."""
    slots = max(1, int(slots_per_worker))
    return math.ceil(max(0, running + pending) / slots)


@dataclass
class ScalingRule:
    """The rule above, with memory per key for the cool-down (thread-safe)."""

    min_workers: int = 0
    max_workers: int = 10
    slots_per_worker: int = 1
    cooldown: float = 300.0
    _seen: dict[object, deque] = field(default_factory=lambda: defaultdict(deque), repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if self.min_workers < 0 or self.max_workers < self.min_workers:
            raise ValueError(
                f"need 0 <= min-workers <= max-workers, got {self.min_workers}, {self.max_workers}"
            )
        if self.cooldown < 0:
            raise ValueError(f"cool-down must be >= 0 seconds, got {self.cooldown}")

    def bounded(self, running: int, pending: int, slots_per_worker: int | None = None) -> int:
        raw = raw_workers(running, pending, slots_per_worker or self.slots_per_worker)
        return min(max(raw, self.min_workers), self.max_workers)

    def recommend(
        self,
        key: object,
        running: int,
        pending: int,
        now: float | None = None,
        slots_per_worker: int | None = None,
    ) -> int:
        """Workers recommended for `key` now (see the module docstring)."""
        now = time.monotonic() if now is None else now
        value = self.bounded(running, pending, slots_per_worker)
        with self._lock:
            seen = self._seen[key]
            seen.append((now, value))
            while seen and seen[0][0] < now - self.cooldown:
                seen.popleft()
            return max(v for _, v in seen)


@dataclass
class Demand:
    """Counts for one capability (or one total)."""

    engine: str
    gpu: str
    pending: int = 0
    running: int = 0
    workers: int = 0
    slots: int = 0
    free_slots: int = 0

    def as_dict(self, recommended: int, slots_per_worker: int) -> dict:
        return {
            "engine": self.engine,
            "gpu": self.gpu == "true",
            "pending": self.pending,
            "running": self.running,
            "workers": self.workers,
            "slots": self.slots,
            "free-slots": self.free_slots,
            "slots-per-worker": slots_per_worker,
            "recommended-workers": recommended,
        }


def _can_run(worker_caps: dict, engine: str, gpu: str) -> bool:
    if engine not in (ANY_ENGINE, ALL_ENGINES) and engine not in (worker_caps.get("engines") or []):
        return False
    return gpu != "true" or len(worker_caps.get("gpus") or []) > 0


def demands(jobs: Iterable[tuple[Key, str]], workers: Iterable[dict]) -> list[Demand]:
    """Per capability seen (always ("any", "false")), then the totals per GPU need (engine
    "all"). `jobs`: ((engine, gpu), "pending" | "processing") pairs; `workers`: alive presence
    documents (capabilities, threads, running)."""
    from elasticthought.documents.states import PENDING

    by_key: dict[Key, Demand] = {(ANY_ENGINE, "false"): Demand(ANY_ENGINE, "false")}
    totals = {g: Demand(ALL_ENGINES, g) for g in ("false", "true")}
    for (engine, gpu), state in jobs:
        for d in (by_key.setdefault((engine, gpu), Demand(engine, gpu)), totals[gpu]):
            if state == PENDING:
                d.pending += 1
            else:
                d.running += 1
    workers = list(workers)
    for d in [*by_key.values(), *totals.values()]:
        for w in workers:
            if _can_run(w.get("capabilities") or {}, d.engine, d.gpu):
                threads = int(w.get("threads") or 0)
                d.workers += 1
                d.slots += threads
                d.free_slots += max(0, threads - len(w.get("running") or []))
    return [*sorted(by_key.values(), key=lambda d: (d.gpu, d.engine)), *totals.values()]


def slots_per_worker(configured: int, demand: Demand) -> int:
    """The configured slots per worker, else the mean threads of the live capable workers
    (rounded up), else 1."""
    if configured > 0:
        return configured
    if demand.workers:
        return max(1, math.ceil(demand.slots / demand.workers))
    return 1


def select(signal: dict, engine: str | None, gpu: bool) -> tuple[int, int]:
    """(running, pending) in a `/scaling` answer for a pool of workers offering `engine`
    (None: every engine) with or without GPUs: the total for that GPU need, or the jobs that
    require `engine` plus those that require none."""
    if engine is None:
        for row in signal.get("totals") or []:
            if bool(row.get("gpu")) == gpu:
                return int(row.get("running") or 0), int(row.get("pending") or 0)
        return 0, 0
    running = pending = 0
    for row in signal.get("capabilities") or []:
        if bool(row.get("gpu")) == gpu and row.get("engine") in (engine, ANY_ENGINE):
            running += int(row.get("running") or 0)
            pending += int(row.get("pending") or 0)
    return running, pending
